import { experimental } from '@grpc/grpc-js';
import type { ServerTlsCredentials } from '../../api/grpc/index.js';
import type { ServerPki } from '../ca/mesh-ca.js';

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/**
 * Server TLS for the enrolment listener: the server presents its SVID *followed by the CA* (a
 * fresh host has only the CA's pin and finds the CA in the handshake), and it *asks* for a client
 * certificate without *requiring* one:
 *  - Enrol comes from hosts without an identity: no client certificate, the token authenticates.
 *  - Renew comes with the host's current SVID; TLS verifies it against the bundle and the handler
 *    reads the SPIFFE ID from it (ctx.peer.spiffeId).
 * grpc-js `ServerCredentials.createSsl(roots, pairs, false)` cannot do this: it sets
 * `requestCert: false`, so the server never asks and clients never send a certificate (a test pins
 * this down). Its certificate-provider credentials set `requestCert: true, rejectUnauthorized:
 * false`, and grpc-js exposes a peer certificate only when `socket.authorized` (the chain verified
 * against our bundle), so a certificate from another CA counts as no certificate, never as an
 * identity.
 *
 * Consequence for anything else served on the same listener (the registry): TLS does not refuse
 * anonymous clients there, so those handlers must refuse calls whose ctx.peer.spiffeId is undefined
 * — or be served on a separate mTLS listener made with api/grpc serverCredentials().
 */
export function enrolmentServerCredentials(pki: ServerPki): ServerTlsCredentials & {
  /** Swaps in a new server SVID (and/or bundle) for new connections, without a restart. */
  update(pki: ServerPki): void;
} {
  const provider = new StaticCertificates(pki);
  // One object serves as both providers: grpc-js 1.14's createCertificateProviderServerCredentials
  // declares (ca, identity) but passes them to a constructor taking (identity, ca), so with two
  // distinct objects their roles would be swapped.
  const grpc = experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return {
    kind: 'tls',
    grpc,
    requireClientCert: false,
    authorizePeer: undefined,
    spiffeId: pki.server.spiffeId,
    update: (next) => provider.set(next),
  };
}

/** A certificate provider fed from memory; listeners hear every set(). */
class StaticCertificates implements experimental.CertificateProvider {
  #ca: Buffer;
  #identity: { certificate: Buffer; privateKey: Buffer };
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();

  constructor(pki: ServerPki) {
    this.#ca = Buffer.from(pki.ca.bundlePem);
    this.#identity = {
      certificate: Buffer.from(pki.serverTlsChainPem),
      privateKey: Buffer.from(pki.server.keyPem),
    };
  }

  set(pki: ServerPki): void {
    this.#ca = Buffer.from(pki.ca.bundlePem);
    this.#identity = {
      certificate: Buffer.from(pki.serverTlsChainPem),
      privateKey: Buffer.from(pki.server.keyPem),
    };
    for (const l of this.#caListeners) l({ caCertificate: this.#ca });
    for (const l of this.#identityListeners) l(this.#identity);
  }

  // Listeners hear the current value on the next microtask, not synchronously: grpc-js registers
  // its own watcher only after subscribing to the provider, so a synchronous first update would be
  // lost and the listener would drop every connection as "credentials not loaded".
  addCaCertificateListener(listener: CaListener): void {
    this.#caListeners.add(listener);
    queueMicrotask(() => {
      if (this.#caListeners.has(listener)) listener({ caCertificate: this.#ca });
    });
  }

  removeCaCertificateListener(listener: CaListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.add(listener);
    queueMicrotask(() => {
      if (this.#identityListeners.has(listener)) listener(this.#identity);
    });
  }

  removeIdentityCertificateListener(listener: IdentityListener): void {
    this.#identityListeners.delete(listener);
  }
}
