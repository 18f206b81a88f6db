// @peculiar/x509 resolves its ASN.1 parsers through tsyringe, which needs the Reflect metadata
// polyfill installed before x509 is evaluated. This import must stay above the x509 import.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { X509Certificate } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import { AgentError, describe } from '../../errors/index.js';
import { parseSpiffeId } from './spiffe-id.js';

/**
 * X509-SVID leaf rules (X509-SVID spec §4–5, reliability §0.1), read from the DER itself:
 * Node's `subjectaltname` is a comma-joined string whose entries may be quoted, so counting URI
 * SANs in it is unreliable.
 *  - exactly one URI SAN, and it is a valid `spiffe://` ID;
 *  - basic constraints cA is not true;
 *  - key usage, if present, has neither keyCertSign nor cRLSign.
 * Chain validation and expiry are TLS's job (it runs before any of this).
 */
export function spiffeIdFromCertificate(der: Uint8Array): string {
  const fail = (why: string, cause?: unknown): AgentError =>
    new AgentError('UNAUTHENTICATED', `certificate is not a valid X509-SVID: ${why}`, { cause });
  let cert: x509.X509Certificate;
  let uris: string[];
  try {
    cert = new x509.X509Certificate(der);
    const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
    uris = san ? san.names.items.filter((n) => n.type === 'url').map((n) => n.value) : [];
  } catch (e: unknown) {
    throw fail(`cannot parse it (${describe(e)})`, e);
  }
  if (uris.length !== 1) throw fail(`it has ${uris.length} URI SANs, an SVID has exactly one`);
  const uri = uris[0] ?? '';
  try {
    parseSpiffeId(uri);
  } catch (e: unknown) {
    throw fail(describe(e), e);
  }
  if (cert.getExtension(x509.BasicConstraintsExtension)?.ca === true) {
    throw fail(`${uri} is a CA certificate (cA=true); a leaf SVID must have cA=false`);
  }
  const usages = cert.getExtension(x509.KeyUsagesExtension)?.usages ?? 0;
  if ((usages & (x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign)) !== 0) {
    throw fail(`${uri} has keyCertSign or cRLSign key usage, which a leaf SVID must not have`);
  }
  return uri;
}

/** Anything that exposes the TLS auth context of a server call (calls and interceptor calls alike). */
export interface HasAuthContext {
  // grpc-js does not export its AuthContext type; this is the part of it we read.
  getAuthContext(): { readonly sslPeerCertificate?: PeerCertificate } | null;
}

/** A verified client certificate that is a valid SVID: its SPIFFE ID and the parsed leaf. */
export interface PeerIdentity {
  readonly spiffeId: string;
  readonly certificate: X509Certificate;
}

/**
 * The identity of the peer of a server call: undefined when the connection has no verified client
 * certificate (plain unix socket, or TLS without client auth); throws UNAUTHENTICATED when the
 * peer presented a certificate that chains to the bundle but is not a valid SVID.
 */
export function peerIdentity(call: HasAuthContext): PeerIdentity | undefined {
  const socket = tlsSocketOf(call);
  if (socket === undefined) return identityOf(call);
  // A connection's verified peer certificate is the one of its handshake: look at it once per
  // connection. getAuthContext() builds a JS object of the certificate with its fingerprints on
  // every call (~30-70 us, the largest cost of a registry call after the token signature).
  let known = bySocket.get(socket);
  if (known === undefined) {
    const identity = identityOf(call);
    known = { identity };
    bySocket.set(socket, known);
  }
  return known.identity;
}

/** From the call's auth context: grpc-js fills sslPeerCertificate only once TLS verified the chain. */
function identityOf(call: HasAuthContext): PeerIdentity | undefined {
  const cert = call.getAuthContext()?.sslPeerCertificate;
  if (!cert?.raw || cert.raw.length === 0) return undefined;
  return cachedIdentity(cert.raw);
}

// Settled verdicts only: a certificate that is no SVID throws from identityOf and is not remembered
// here (cachedIdentity remembers the error by the certificate's bytes).
const bySocket = new WeakMap<TLSSocket, { readonly identity: PeerIdentity | undefined }>();

/**
 * The TLS socket under a grpc-js server call (handler call → interceptor calls → the base call's
 * HTTP/2 stream → session → socket). These are grpc-js internals: when their shape is not what it
 * was (grpc-js 1.14), the answer is undefined and peerIdentity reads the auth context every call,
 * as before. test/unit/grpc/tls.test.ts notices that. Only a handshake that is over counts.
 */
function tlsSocketOf(call: unknown): TLSSocket | undefined {
  let c: unknown = call;
  for (let depth = 0; depth < 8 && c !== null && typeof c === 'object'; depth++) {
    const fields = c as { stream?: { session?: { socket?: unknown } }; call?: unknown; nextCall?: unknown };
    if (fields.stream !== undefined) {
      const socket = fields.stream.session?.socket;
      return socket instanceof TLSSocket && socket.authorized ? socket : undefined;
    }
    c = fields.call ?? fields.nextCall;
  }
  return undefined;
}

/** The SPIFFE ID of the peer of a server call; see peerIdentity. */
export function peerSpiffeId(call: HasAuthContext): string | undefined {
  return peerIdentity(call)?.spiffeId;
}

// Parsing a certificate costs ~0.9 ms of CPU, and every call on a connection presents the same one:
// remember the verdict (the identity, or the error) by the certificate's bytes. Bounded, oldest out first.
const verdicts = new Map<string, PeerIdentity | { error: AgentError }>();
const maxVerdicts = 4096;

function cachedIdentity(der: Buffer): PeerIdentity {
  const key = der.toString('base64');
  let verdict = verdicts.get(key);
  if (verdict === undefined) {
    try {
      verdict = { spiffeId: spiffeIdFromCertificate(der), certificate: new X509Certificate(der) };
    } catch (e: unknown) {
      verdict = { error: AgentError.wrap(e, 'UNAUTHENTICATED', 'certificate is not a valid X509-SVID') };
    }
    if (verdicts.size >= maxVerdicts) {
      const oldest = verdicts.keys().next().value;
      if (oldest !== undefined) verdicts.delete(oldest);
    }
    verdicts.set(key, verdict);
  }
  if ('error' in verdict) throw verdict.error;
  return verdict;
}
