import type { X509Certificate } from 'node:crypto';
import type {
  DescMessage,
  DescMethod,
  DescService,
  Message,
  MessageInitShape,
  MessageShape,
} from '@bufbuild/protobuf';
import type {
  Metadata,
  ServerDuplexStream,
  ServerReadableStream,
  ServerUnaryCall,
  ServerWritableStream,
  UntypedServiceImplementation,
  sendUnaryData,
} from '@grpc/grpc-js';
import { AgentError, describe } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { methodPath, serviceDefinition } from './service-definition.js';
import type { ServiceDefinition } from '@grpc/grpc-js';
import { toEdgeStatus } from './status.js';
import { peerIdentity } from './svid.js';
import type { HasAuthContext } from './svid.js';

/** What a handler knows about the call besides the request. */
export interface CallContext {
  /** Full method path, e.g. `/networkservice.NetworkService/Request`. */
  readonly method: string;
  readonly metadata: Metadata;
  /** Aborted when the client cancels, the deadline passes, or the server shuts down. */
  readonly signal: AbortSignal;
  readonly peer: {
    /** grpc-js peer string: `ip:port` for tcp, the socket path for unix. */
    readonly address: string;
    /** SPIFFE ID from the verified client certificate; undefined without client TLS. */
    readonly spiffeId: string | undefined;
    /** The verified client certificate (the SVID leaf); undefined without client TLS. */
    readonly certificate: X509Certificate | undefined;
  };
  /**
   * Sends response headers now (at most once, before the response or the first streamed message);
   * without it grpc-js sends empty headers with the response.
   */
  sendHeader(metadata: Metadata): void;
}

/** The sending half of a server stream; `send` resolves once the message is handed to HTTP/2. */
export interface ServerStream<T> {
  send(message: T): Promise<void>;
}

export type UnaryImpl<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>> | MessageInitShape<O>;

/** Returning ends the stream with OK; throwing ends it with the mapped status. */
export type ServerStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  request: MessageShape<I>,
  stream: ServerStream<MessageInitShape<O>>,
  ctx: CallContext,
) => Promise<void>;

export type ClientStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  ctx: CallContext,
) => Promise<MessageInitShape<O>>;

export type BidiStreamingImpl<I extends DescMessage, O extends DescMessage> = (
  requests: AsyncIterable<MessageShape<I>>,
  stream: ServerStream<MessageInitShape<O>>,
  ctx: CallContext,
) => Promise<void>;

/** The handler type for one method descriptor of a generated service. */
export type MethodImpl<M> = M extends {
  readonly methodKind: infer K;
  readonly input: infer I extends DescMessage;
  readonly output: infer O extends DescMessage;
}
  ? K extends 'unary'
    ? UnaryImpl<I, O>
    : K extends 'server_streaming'
      ? ServerStreamingImpl<I, O>
      : K extends 'client_streaming'
        ? ClientStreamingImpl<I, O>
        : K extends 'bidi_streaming'
          ? BidiStreamingImpl<I, O>
          : never
  : never;

/** Handlers for every method of a generated service, keyed by the methods' local names. */
export type ServiceImpl<S extends DescService> = {
  readonly [K in keyof S['method']]: MethodImpl<S['method'][K]>;
};

/** A service with its handlers, ready to be passed to startServer. */
export interface ServiceRegistration {
  readonly service: DescService;
  readonly definition: ServiceDefinition;
  /** The grpc-js handlers; the server passes its logger for the errors it maps. */
  handlers(log: Logger): UntypedServiceImplementation;
}

// The runtime view of handlers: the typed ServiceImpl guarantees these shapes per method kind.
type AnyInit = MessageInitShape<DescMessage>;
type LooseUnary = (request: Message, ctx: CallContext) => Promise<AnyInit> | AnyInit;
type LooseServerStreaming = (
  request: Message,
  stream: ServerStream<AnyInit>,
  ctx: CallContext,
) => Promise<void>;
type LooseClientStreaming = (requests: AsyncIterable<Message>, ctx: CallContext) => Promise<AnyInit>;
type LooseBidi = (
  requests: AsyncIterable<Message>,
  stream: ServerStream<AnyInit>,
  ctx: CallContext,
) => Promise<void>;

/**
 * Binds typed handlers to a generated service. Every handler runs behind the edge: whatever it
 * throws becomes a gRPC status (status.ts), never an unhandled rejection.
 */
export function implement<S extends DescService>(service: S, impl: ServiceImpl<S>): ServiceRegistration {
  const byName = impl as Readonly<Record<string, unknown>>;
  for (const method of service.methods) {
    if (typeof byName[method.localName] !== 'function') {
      throw new AgentError(
        'INTERNAL',
        `no handler for ${methodPath(method)} (expected "${method.localName}")`,
      );
    }
  }
  return {
    service,
    definition: serviceDefinition(service),
    handlers(log) {
      const out: UntypedServiceImplementation = {};
      for (const method of service.methods) {
        out[method.localName] = wrap(method, byName[method.localName], log);
      }
      return out;
    },
  };
}

function wrap(method: DescMethod, fn: unknown, log: Logger): UntypedServiceImplementation[string] {
  const path = methodPath(method);
  const fail = (e: unknown): { code: number; details: string } => toEdgeStatus(e, log, path);
  switch (method.methodKind) {
    case 'unary': {
      const handler = fn as LooseUnary;
      return (call: ServerUnaryCall<Message, AnyInit>, callback: sendUnaryData<AnyInit>) => {
        void (async () => handler(call.request, callContext(call, path)))().then(
          (response) => callback(null, response),
          (e: unknown) => callback(fail(e)),
        );
      };
    }
    case 'server_streaming': {
      const handler = fn as LooseServerStreaming;
      return (call: ServerWritableStream<Message, AnyInit>) => {
        void (async () => {
          const ctx = callContext(call, path);
          await handler(call.request, sender(call, ctx.signal), ctx);
        })().then(
          () => endOk(call),
          (e: unknown) => endWithError(call, fail(e)),
        );
      };
    }
    case 'client_streaming': {
      const handler = fn as LooseClientStreaming;
      return (call: ServerReadableStream<Message, AnyInit>, callback: sendUnaryData<AnyInit>) => {
        void (async () => handler(requests(call), callContext(call, path)))().then(
          (response) => callback(null, response),
          (e: unknown) => callback(fail(e)),
        );
      };
    }
    case 'bidi_streaming': {
      const handler = fn as LooseBidi;
      return (call: ServerDuplexStream<Message, AnyInit>) => {
        void (async () => {
          const ctx = callContext(call, path);
          await handler(requests(call), sender(call, ctx.signal), ctx);
        })().then(
          () => endOk(call),
          (e: unknown) => endWithError(call, fail(e)),
        );
      };
    }
  }
}

/** The part of a grpc-js server call (any kind) that the context reads. */
interface SurfaceCall extends HasAuthContext {
  readonly cancelled: boolean;
  readonly metadata: Metadata;
  getPeer(): string;
  sendMetadata(responseMetadata: Metadata): void;
  once(event: 'cancelled', listener: () => void): unknown;
}

/** Throws UNAUTHENTICATED when the peer's certificate is no SVID; callers run it inside the edge. */
function callContext(call: SurfaceCall, method: string): CallContext {
  const controller = new AbortController();
  const abort = (): void => {
    controller.abort(
      new AgentError('CANCELLED', `call ${method} was cancelled by the client or its deadline`),
    );
  };
  if (call.cancelled) abort();
  else call.once('cancelled', abort);
  const identity = peerIdentity(call);
  return {
    method,
    metadata: call.metadata,
    signal: controller.signal,
    peer: { address: call.getPeer(), spiffeId: identity?.spiffeId, certificate: identity?.certificate },
    sendHeader: (metadata) => {
      call.sendMetadata(metadata);
    },
  };
}

function sender(
  call: ServerWritableStream<Message, AnyInit> | ServerDuplexStream<Message, AnyInit>,
  signal: AbortSignal,
): ServerStream<AnyInit> {
  return {
    send(message) {
      return new Promise<void>((resolve, reject) => {
        if (signal.aborted) {
          reject(signal.reason as Error);
          return;
        }
        // The abort listener is what keeps a handler from waiting forever on a dead call.
        const onAbort = (): void => reject(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
        call.write(message, (err: Error | null | undefined) => {
          signal.removeEventListener('abort', onAbort);
          if (err)
            reject(new AgentError('UNAVAILABLE', `stream write failed: ${describe(err)}`, { cause: err }));
          else resolve();
        });
      });
    },
  };
}

async function* requests(call: ServerReadableStream<Message, AnyInit>): AsyncIterable<Message> {
  // destroyOnReturn: false, so a handler that stops reading early can still write its answer.
  for await (const message of call.iterator({ destroyOnReturn: false })) {
    yield message as Message;
  }
}

/** A cancelled call has already ended with CANCELLED; nothing more can reach the client. */
function endOk(call: ServerWritableStream<Message, AnyInit> | ServerDuplexStream<Message, AnyInit>): void {
  if (!call.cancelled) call.end();
}

function endWithError(
  call: ServerWritableStream<Message, AnyInit> | ServerDuplexStream<Message, AnyInit>,
  status: { code: number; details: string },
): void {
  // grpc-js server streams turn an emitted 'error' into the call's final status.
  if (!call.cancelled) call.emit('error', status);
}
