import { X509Certificate, createPrivateKey } from 'node:crypto';
import type { PeerCertificate } from 'node:tls';
import { ChannelCredentials, ServerCredentials } from '@grpc/grpc-js';
import { AgentError, describe } from '../../errors/index.js';
import { parseSpiffeId } from './spiffe-id.js';
import { spiffeIdFromCertificate } from './svid.js';

/**
 * Transport security for servers and dialers. gRPC-js defaults are unsafe for us (reliability §5.2):
 * a null root store silently means the public CAs, and the hostname check rejects SVIDs, which
 * carry only a URI SAN. So TLS here always pins the mesh trust bundle and checks SPIFFE IDs.
 */

/**
 * No transport security. Only for addresses that never leave the host: unix sockets, whose file
 * mode decides who may connect, and — when `allowLoopbackTcp` says so explicitly — loopback tcp,
 * where any local user can connect. startServer and dial refuse it anywhere else.
 */
export interface InsecureCredentials {
  readonly kind: 'insecure';
  readonly allowLoopbackTcp: boolean;
}

export function insecure(options: { readonly allowLoopbackTcp?: boolean } = {}): InsecureCredentials {
  return { kind: 'insecure', allowLoopbackTcp: options.allowLoopbackTcp ?? false };
}

/** Decides per call whether a peer may call a method; runs before the handler. */
export type AuthorizePeer = (spiffeId: string, method: string) => boolean | Promise<boolean>;

export interface ServerTlsCredentials {
  readonly kind: 'tls';
  readonly grpc: ServerCredentials;
  readonly requireClientCert: boolean;
  readonly authorizePeer: AuthorizePeer | undefined;
  /**
   * Full method paths that may be called without a client SVID on a listener where client certificates
   * are optional (enrolment: hosts have no identity yet). Every other method needs a verified SVID and
   * passes `authorizePeer`. Only used together with `authorizePeer`.
   */
  readonly anonymousMethods?: ReadonlySet<string>;
  /** The SPIFFE ID of our own certificate. */
  readonly spiffeId: string;
}

export interface ClientTlsCredentials {
  readonly kind: 'tls';
  readonly grpc: ChannelCredentials;
}

export type ServerTransportCredentials = InsecureCredentials | ServerTlsCredentials;
export type ClientTransportCredentials = InsecureCredentials | ClientTlsCredentials;

export interface ServerCredentialsOptions {
  /** The mesh trust bundle (one or more CA certificates, PEM). Never empty. */
  readonly bundlePem: string;
  /** Our SVID, leaf first, then any intermediates (PEM). */
  readonly certChainPem: string;
  readonly keyPem: string;
  /** false only for endpoints reached before a peer has an identity (enrolment). */
  readonly requireClientCert: boolean;
  /** Checked per call; without a verified client SVID the call gets UNAUTHENTICATED. */
  readonly authorizePeer?: AuthorizePeer;
}

export function serverCredentials(options: ServerCredentialsOptions): ServerTlsCredentials {
  const bundle = bundleBuffer(options.bundlePem);
  const spiffeId = ownIdentity(options.certChainPem, options.keyPem);
  const grpc = ServerCredentials.createSsl(
    bundle,
    [{ cert_chain: Buffer.from(options.certChainPem), private_key: Buffer.from(options.keyPem) }],
    options.requireClientCert,
  );
  return {
    kind: 'tls',
    grpc,
    requireClientCert: options.requireClientCert,
    authorizePeer: options.authorizePeer,
    spiffeId,
  };
}

/** Which server identities a client accepts: one exact SPIFFE ID, or a predicate. */
export type ExpectedPeer = string | ((spiffeId: string) => boolean);

export interface ClientCredentialsOptions {
  readonly bundlePem: string;
  /** Our SVID for mTLS; leave out (with keyPem) only for server-authenticated TLS (enrolment). */
  readonly certChainPem?: string;
  readonly keyPem?: string;
  /** Without it, any valid SVID that chains to the bundle is accepted: the bundle is the boundary. */
  readonly expectedServerId?: ExpectedPeer;
  /**
   * Hears the certificate of every server this client accepted (after the bundle and SPIFFE ID
   * checks): the daemon addresses its per-hop tokens to that server and checks the tokens it signs.
   */
  readonly onServerCertificate?: (cert: PeerCertificate) => void;
}

export function clientCredentials(options: ClientCredentialsOptions): ClientTlsCredentials {
  const bundle = bundleBuffer(options.bundlePem);
  const { certChainPem, keyPem, expectedServerId } = options;
  if ((certChainPem === undefined) !== (keyPem === undefined)) {
    throw new AgentError(
      'CONFIG_INVALID',
      'client TLS needs both a certificate chain and its key, or neither',
    );
  }
  if (certChainPem !== undefined && keyPem !== undefined) ownIdentity(certChainPem, keyPem);
  if (typeof expectedServerId === 'string') {
    try {
      // A typo here would otherwise refuse every server with a confusing handshake error.
      parseSpiffeId(expectedServerId);
    } catch (e: unknown) {
      throw configInvalid('expectedServerId', e);
    }
  }
  const grpc = ChannelCredentials.createSsl(
    bundle,
    keyPem === undefined ? null : Buffer.from(keyPem),
    certChainPem === undefined ? null : Buffer.from(certChainPem),
    // Runs after Node has verified the chain against the bundle (rejectUnauthorized stays true).
    {
      checkServerIdentity: (_host, cert) => {
        const refused = checkServerSpiffeId(cert, expectedServerId);
        if (refused === undefined) options.onServerCertificate?.(cert);
        return refused;
      },
    },
  );
  return { kind: 'tls', grpc };
}

/**
 * The client-side peer check: replaces the hostname check (which we do not want: peers are
 * named by SPIFFE ID, not DNS). Returns an Error to refuse the connection.
 */
export function checkServerSpiffeId(
  cert: PeerCertificate,
  expected: ExpectedPeer | undefined,
): Error | undefined {
  let presented: string;
  try {
    presented = spiffeIdFromCertificate(cert.raw);
  } catch (e: unknown) {
    return new Error(`server certificate refused: ${describe(e)}`, { cause: e });
  }
  if (expected === undefined) return undefined;
  if (typeof expected === 'string') {
    return presented === expected
      ? undefined
      : new Error(`server presented SPIFFE ID ${presented}, expected ${expected}`);
  }
  let accepted: boolean;
  try {
    accepted = expected(presented);
  } catch (e: unknown) {
    // This runs inside Node's TLS handshake: a throw there would not reach any caller.
    return new Error(`the peer check failed for server SPIFFE ID ${presented}: ${describe(e)}`, { cause: e });
  }
  return accepted
    ? undefined
    : new Error(`server presented SPIFFE ID ${presented}, which the client's peer check does not accept`);
}

const CERT_BLOCK_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * The trust bundle as grpc-js wants it. Refusing an empty one matters: grpc-js (and Node) treat
 * "no roots" as "use the public CA store", which would let any public CA vouch for a peer.
 */
function bundleBuffer(bundlePem: string): Buffer {
  const blocks = bundlePem.match(CERT_BLOCK_RE) ?? [];
  if (blocks.length === 0) {
    throw new AgentError('CONFIG_INVALID', 'the trust bundle holds no certificate', {
      hint: 'pass the mesh CA bundle (PEM); the public CA store is never used as a fallback',
    });
  }
  for (const block of blocks) {
    try {
      new X509Certificate(block);
    } catch (e: unknown) {
      throw configInvalid('the trust bundle holds a certificate that does not parse', e);
    }
  }
  return Buffer.from(blocks.join('\n') + '\n');
}

/**
 * Checks our own SVID before handing it to TLS, so a wrong file shows up as a clear config error
 * at start, not as handshake failures on the peers' side later. Returns its SPIFFE ID.
 */
function ownIdentity(certChainPem: string, keyPem: string): string {
  const leafPem = certChainPem.match(CERT_BLOCK_RE)?.[0];
  if (leafPem === undefined)
    throw new AgentError('CONFIG_INVALID', 'the certificate chain holds no certificate');
  let leaf: X509Certificate;
  try {
    leaf = new X509Certificate(leafPem);
  } catch (e: unknown) {
    throw configInvalid('our certificate does not parse', e);
  }
  let keyMatches: boolean;
  try {
    keyMatches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch (e: unknown) {
    // describe() of a key parse error never includes the key material.
    throw configInvalid('our private key does not parse', e);
  }
  if (!keyMatches)
    throw new AgentError('CONFIG_INVALID', 'our private key does not belong to our certificate');
  try {
    return spiffeIdFromCertificate(leaf.raw);
  } catch (e: unknown) {
    throw configInvalid('our own certificate is not usable', e);
  }
}

/** Checks a server identity as serverCredentials() does (bundle, chain, key); returns its SPIFFE ID. */
export function checkedServerIdentity(pem: {
  readonly bundlePem: string;
  readonly certChainPem: string;
  readonly keyPem: string;
}): string {
  bundleBuffer(pem.bundlePem);
  return ownIdentity(pem.certChainPem, pem.keyPem);
}

/** Always CONFIG_INVALID: errors from the parsers carry other codes that do not fit a config mistake. */
function configInvalid(what: string, cause: unknown): AgentError {
  return new AgentError('CONFIG_INVALID', `${what}: ${describe(cause)}`, { cause });
}
