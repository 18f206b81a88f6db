import { X509Certificate } from 'node:crypto';
import type { Metadata, UntypedServiceImplementation } from '@grpc/grpc-js';
import type { CallContext, ServiceRegistration } from '../api/grpc/index.js';
import { AgentError } from '../errors/index.js';

/**
 * Two things the registry needs that `CallContext` (src/api/grpc) does not offer yet: the peer's
 * TLS certificate (prev_token_signed verifies the caller's token with it) and sending response
 * headers (the `path` header). The wrapper below remembers each grpc-js call under its Metadata
 * object, which `implement` passes through unchanged as `ctx.metadata`.
 * TODO(api/grpc owner): add `peer.certificate` and `sendHeader` to CallContext and delete this file.
 */
interface GrpcCall {
  readonly metadata: Metadata;
  getAuthContext(): { readonly sslPeerCertificate?: { readonly raw?: Buffer } } | null;
  sendMetadata(responseMetadata: Metadata): void;
}

const calls = new WeakMap<Metadata, GrpcCall>();

/** Parsed peer certificates by DER: a peer makes many calls with one certificate, parsing costs ~0.1 ms. */
const certificates = new Map<string, X509Certificate>();
const MAX_CACHED_CERTIFICATES = 1024;

function certificateOf(raw: Buffer): X509Certificate {
  const key = raw.toString('base64');
  let cert = certificates.get(key);
  if (!cert) {
    cert = new X509Certificate(raw);
    // Oldest first out; a mesh has far fewer live peer certificates than this at a time.
    if (certificates.size >= MAX_CACHED_CERTIFICATES)
      certificates.delete(certificates.keys().next().value ?? '');
    certificates.set(key, cert);
  }
  return cert;
}

type LooseHandler = (call: GrpcCall, ...rest: unknown[]) => unknown;

/** The registration with every handler remembering its call for callExtras(). */
export function withCallExtras(registration: ServiceRegistration): ServiceRegistration {
  return {
    ...registration,
    handlers(log) {
      const inner = registration.handlers(log);
      const out: UntypedServiceImplementation = {};
      for (const [name, handler] of Object.entries(inner)) {
        const fn = handler as unknown as LooseHandler;
        const wrapped: LooseHandler = (call, ...rest) => {
          calls.set(call.metadata, call);
          return fn(call, ...rest);
        };
        out[name] = wrapped;
      }
      return out;
    },
  };
}

export interface CallExtras {
  /** The verified client certificate (leaf), undefined without client TLS. */
  readonly peerCertificate: X509Certificate | undefined;
  /** Sends response headers; call before the handler returns. */
  sendHeader(metadata: Metadata): void;
}

export function callExtras(ctx: CallContext): CallExtras {
  const call = calls.get(ctx.metadata);
  if (!call) {
    throw new AgentError(
      'INTERNAL',
      `registry handler for ${ctx.method} was not wrapped with withCallExtras`,
    );
  }
  const raw = call.getAuthContext()?.sslPeerCertificate?.raw;
  return {
    peerCertificate: raw && raw.length > 0 ? certificateOf(raw) : undefined,
    sendHeader: (md) => {
      call.sendMetadata(md);
    },
  };
}
