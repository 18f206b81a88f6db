import { experimental } from '@grpc/grpc-js';
import type { PeerCertificate } from 'node:tls';
import type {
  AuthorizePeer,
  ClientTlsCredentials,
  ExpectedPeer,
  ServerTlsCredentials,
} from './credentials.js';
import { checkServerSpiffeId, checkedServerIdentity } from './credentials.js';

type CaListener = experimental.CaCertificateUpdateListener;
type IdentityListener = experimental.IdentityCertificateUpdateListener;

/** What a server presents and trusts: its chain (leaf first) and key, and the bundle it verifies clients with. */
export interface ServerIdentityPem {
  readonly bundlePem: string;
  readonly certChainPem: string;
  readonly keyPem: string;
}

export type UpdatableServerCredentials = ServerTlsCredentials & {
  /** Swaps in a renewed SVID (and/or bundle) for new connections, without a restart. */
  update(next: ServerIdentityPem): void;
};

/**
 * Server TLS whose certificate can be replaced while serving (an SVID renewed at half-life), built
 * on grpc-js certificate-provider credentials. Those *ask* for a client certificate without
 * *requiring* one (`requestCert: true, rejectUnauthorized: false`), and grpc-js exposes a peer
 * certificate only when it verified against the bundle, so a certificate from another CA counts as
 * none. Who may call is then decided per call: with `authorizePeer`, a call without a verified SVID
 * gets UNAUTHENTICATED (api/grpc authorizationInterceptor); `anonymousMethods` are the exceptions
 * (enrolment). Both inputs are checked as serverCredentials() checks them.
 */
export function updatableServerCredentials(
  initial: ServerIdentityPem,
  options: { readonly authorizePeer?: AuthorizePeer; readonly anonymousMethods?: ReadonlySet<string> } = {},
): UpdatableServerCredentials {
  const spiffeId = checkedServerIdentity(initial);
  const provider = new CertificateStore(initial);
  // One object serves as both providers: grpc-js 1.14's createCertificateProviderServerCredentials
  // declares (ca, identity) but passes them to a constructor taking (identity, ca), so with two
  // distinct objects their roles would be swapped.
  const grpc = experimental.createCertificateProviderServerCredentials(provider, provider, false);
  return {
    kind: 'tls',
    grpc,
    requireClientCert: false,
    authorizePeer: options.authorizePeer,
    ...(options.anonymousMethods ? { anonymousMethods: options.anonymousMethods } : {}),
    spiffeId,
    update: (next) => {
      checkedServerIdentity(next);
      provider.set(next);
    },
  };
}

export type UpdatableClientCredentials = ClientTlsCredentials & {
  /** A renewed SVID (and/or bundle) for the TLS connections made from now on. */
  update(next: ServerIdentityPem): void;
};

/**
 * Client mTLS whose certificate can be replaced while channels stay open (grpc-js certificate-provider
 * channel credentials): every new TLS connection — the first, and every reconnect — presents the
 * latest SVID, and connections already up go on undisturbed. An agent that renews its SVID therefore
 * keeps its channels (and the monitor streams on them) to other agents instead of re-dialling them.
 * The server is checked as clientCredentials() checks it: the bundle, then the SPIFFE ID.
 */
export function updatableClientCredentials(
  initial: ServerIdentityPem,
  options: {
    readonly expectedServerId?: ExpectedPeer;
    readonly onServerCertificate?: (cert: PeerCertificate) => void;
  } = {},
): UpdatableClientCredentials {
  checkedServerIdentity(initial);
  const provider = new CertificateStore(initial);
  const grpc = experimental.createCertificateProviderChannelCredentials(provider, provider, {
    checkServerIdentity: (_host, cert) => {
      const refused = checkServerSpiffeId(cert, options.expectedServerId);
      if (refused === undefined) options.onServerCertificate?.(cert);
      return refused;
    },
  });
  return {
    kind: 'tls',
    grpc,
    update: (next) => {
      checkedServerIdentity(next);
      provider.set(next);
    },
  };
}

/** A certificate provider fed from memory; listeners hear every set(). */
class CertificateStore implements experimental.CertificateProvider {
  #ca: Buffer;
  #identity: { certificate: Buffer; privateKey: Buffer };
  readonly #caListeners = new Set<CaListener>();
  readonly #identityListeners = new Set<IdentityListener>();

  constructor(pem: ServerIdentityPem) {
    this.#ca = Buffer.from(pem.bundlePem);
    this.#identity = { certificate: Buffer.from(pem.certChainPem), privateKey: Buffer.from(pem.keyPem) };
  }

  set(pem: ServerIdentityPem): void {
    this.#ca = Buffer.from(pem.bundlePem);
    this.#identity = { certificate: Buffer.from(pem.certChainPem), privateKey: Buffer.from(pem.keyPem) };
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
