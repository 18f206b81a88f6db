import type {
  DescMessage,
  DescMethod,
  DescService,
  Message,
  MessageInitShape,
  MessageShape,
} from '@bufbuild/protobuf';
import { Metadata } from '@grpc/grpc-js';
import type {
  CallOptions as GrpcCallOptions,
  Client,
  ClientDuplexStream,
  ClientReadableStream,
  ClientWritableStream,
} from '@grpc/grpc-js';
import { AgentError } from '../../errors/index.js';
import { deserializerFor, methodPath, serializerFor } from './service-definition.js';
import { fromCallError } from './status.js';

/** Per-call options. Unary calls always get a deadline: `deadline`, else now + `timeoutMs`, else the client default. */
export interface CallOptions {
  readonly deadline?: Date;
  readonly timeoutMs?: number;
  /** Aborting cancels the call; the caller sees a CANCELLED AgentError. */
  readonly signal?: AbortSignal;
  readonly metadata?: Metadata;
}

/**
 * A server stream as an async iterable. Errors arrive as AgentErrors; leaving the loop early
 * (break, throw) cancels the call so the server stops sending. `call` is the raw grpc-js stream
 * for code that prefers events.
 */
export interface ResponseStream<T> extends AsyncIterable<T> {
  readonly call: ClientReadableStream<T>;
  cancel(): void;
}

/**
 * A bidi stream: `write` requests and `end` when done, read responses as an async iterable (typed,
 * errors as AgentErrors, early exit cancels). `call` is the raw grpc-js duplex.
 */
export interface BidiStream<I, O> extends AsyncIterable<O> {
  readonly call: ClientDuplexStream<I, O>;
  write(message: I): void;
  end(): void;
  cancel(): void;
}

/** A client-streaming call: write requests to `call`, end it, then await `response`. */
export interface ClientStreamingCall<I, O> {
  readonly call: ClientWritableStream<I>;
  readonly response: Promise<O>;
}

export type ClientMethod<M> = M extends {
  readonly methodKind: infer K;
  readonly input: infer I extends DescMessage;
  readonly output: infer O extends DescMessage;
}
  ? K extends 'unary'
    ? (request: MessageInitShape<I>, options?: CallOptions) => Promise<MessageShape<O>>
    : K extends 'server_streaming'
      ? (request: MessageInitShape<I>, options?: CallOptions) => ResponseStream<MessageShape<O>>
      : K extends 'client_streaming'
        ? (options?: CallOptions) => ClientStreamingCall<MessageInitShape<I>, MessageShape<O>>
        : K extends 'bidi_streaming'
          ? (options?: CallOptions) => BidiStream<MessageInitShape<I>, MessageShape<O>>
          : never
  : never;

/** A typed client for a generated service: one function per method, by local name. */
export type ServiceClient<S extends DescService> = {
  readonly [K in keyof S['method']]: ClientMethod<S['method'][K]>;
};

export interface ClientDefaults {
  /** Deadline for unary calls that give none (NSM's own request timeout is 15 s). */
  readonly defaultTimeoutMs: number;
  /** Named in error details so a failure says which peer it was. */
  readonly target: string;
}

type AnyInit = MessageInitShape<DescMessage>;

/** Builds a typed client that sends every call through `client` (and so through its channel). */
export function makeClient<S extends DescService>(
  service: S,
  client: Client,
  defaults: ClientDefaults,
): ServiceClient<S> {
  const out: Record<string, unknown> = {};
  for (const method of service.methods) out[method.localName] = clientMethod(method, client, defaults);
  return out as ServiceClient<S>;
}

function clientMethod(method: DescMethod, client: Client, defaults: ClientDefaults): unknown {
  const path = methodPath(method);
  const serialize = serializerFor(method.input);
  const deserialize = deserializerFor(method.output);
  const toError = (e: unknown): AgentError => fromCallError(e, path, defaults.target);
  switch (method.methodKind) {
    case 'unary':
      return (request: AnyInit, options: CallOptions = {}): Promise<Message> =>
        new Promise<Message>((resolve, reject) => {
          if (options.signal?.aborted) {
            reject(cancelled(path));
            return;
          }
          const deadline =
            options.deadline ?? new Date(Date.now() + (options.timeoutMs ?? defaults.defaultTimeoutMs));
          const onAbort = (): void => call.cancel();
          const call = client.makeUnaryRequest(
            path,
            serialize,
            deserialize,
            request,
            options.metadata ?? new Metadata(),
            { deadline },
            (err, response) => {
              options.signal?.removeEventListener('abort', onAbort);
              if (err) reject(toError(err));
              else if (response === undefined)
                reject(new AgentError('INTERNAL', `${path} returned no message`));
              else resolve(response);
            },
          );
          options.signal?.addEventListener('abort', onAbort, { once: true });
        });
    case 'server_streaming':
      return (request: AnyInit, options: CallOptions = {}): ResponseStream<Message> => {
        const call = client.makeServerStreamRequest(
          path,
          serialize,
          deserialize,
          request,
          options.metadata ?? new Metadata(),
          streamOptions(options),
        );
        linkSignal(options.signal, call);
        return responseStream(call, toError);
      };
    case 'client_streaming':
      return (options: CallOptions = {}): ClientStreamingCall<AnyInit, Message> => {
        let settle: { resolve(m: Message): void; reject(e: AgentError): void } | undefined;
        const response = new Promise<Message>((resolve, reject) => {
          settle = { resolve, reject };
        });
        const call = client.makeClientStreamRequest(
          path,
          serialize,
          deserialize,
          options.metadata ?? new Metadata(),
          streamOptions(options),
          (err, value) => {
            if (err) settle?.reject(toError(err));
            else if (value === undefined)
              settle?.reject(new AgentError('INTERNAL', `${path} returned no message`));
            else settle?.resolve(value);
          },
        );
        linkSignal(options.signal, call);
        return { call, response };
      };
    case 'bidi_streaming':
      return (options: CallOptions = {}): BidiStream<AnyInit, Message> => {
        const call = client.makeBidiStreamRequest(
          path,
          serialize,
          deserialize,
          options.metadata ?? new Metadata(),
          streamOptions(options),
        );
        linkSignal(options.signal, call);
        return {
          ...responseStream(call, toError),
          call,
          write: (message) => void call.write(message),
          end: () => void call.end(),
        };
      };
  }
}

/** Streams are long-lived (monitors, watches), so they get a deadline only when asked for one. */
function streamOptions(options: CallOptions): GrpcCallOptions {
  if (options.deadline) return { deadline: options.deadline };
  if (options.timeoutMs !== undefined) return { deadline: new Date(Date.now() + options.timeoutMs) };
  return {};
}

/**
 * Cancels the call when the caller's signal aborts, and lets go of the signal when the call ends
 * (grpc-js emits 'status' once for every outcome): a long-lived signal shared by many streams —
 * an agent's lifetime signal — must not collect one listener per call it ever made.
 */
function linkSignal(
  signal: AbortSignal | undefined,
  call: { cancel(): void; once(event: 'status', listener: () => void): unknown },
): void {
  if (!signal) return;
  if (signal.aborted) {
    call.cancel();
    return;
  }
  const cancel = (): void => call.cancel();
  signal.addEventListener('abort', cancel, { once: true });
  call.once('status', () => signal.removeEventListener('abort', cancel));
}

function cancelled(path: string): AgentError {
  return new AgentError('CANCELLED', `call ${path} was cancelled before it started`);
}

/** The reading half shared by server and bidi streams. */
interface ReadableCall extends AsyncIterable<unknown> {
  cancel(): void;
  on(event: 'error', listener: (e: Error) => void): unknown;
}

function responseStream<C extends ReadableCall>(
  call: C,
  toError: (e: unknown) => AgentError,
): AsyncIterable<Message> & { readonly call: C; cancel(): void } {
  // grpc-js emits the final error as an 'error' event; with no listener attached yet (the caller
  // has not started iterating) Node would turn it into an uncaught exception. Keep it instead.
  let failure: Error | undefined;
  call.on('error', (e) => (failure ??= e));
  return {
    call,
    cancel: () => call.cancel(),
    async *[Symbol.asyncIterator]() {
      let finished = false;
      try {
        for await (const message of call) yield message as Message;
        finished = true;
      } catch (e: unknown) {
        finished = true;
        throw toError(e);
      } finally {
        // Reached without `finished` only when the consumer left the loop early.
        if (!finished) call.cancel();
      }
      // The stream ended before iteration began, or ended and then reported its status.
      if (failure !== undefined) throw toError(failure);
    },
  };
}
