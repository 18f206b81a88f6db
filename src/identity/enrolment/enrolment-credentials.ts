import { updatableServerCredentials } from '../../api/grpc/index.js';
import type { ServerIdentityPem, ServerTlsCredentials } from '../../api/grpc/index.js';
import type { ServerPki } from '../ca/mesh-ca.js';

/**
 * Server TLS for the enrolment listener: the server presents its SVID *followed by the CA* (a
 * fresh host has only the CA's pin and finds the CA in the handshake), and it *asks* for a client
 * certificate without *requiring* one:
 *  - Enrol comes from hosts without an identity: no client certificate, the token authenticates.
 *  - Renew comes with the host's current SVID; TLS verifies it against the bundle and the handler
 *    reads the SPIFFE ID from it (ctx.peer.spiffeId).
 * grpc-js `ServerCredentials.createSsl(roots, pairs, false)` cannot do this: it sets
 * `requestCert: false`, so the server never asks and clients never send a certificate (a test pins
 * this down). The certificate-provider credentials of api/grpc updatableServerCredentials do, and
 * grpc-js exposes a peer certificate only when it verified against our bundle, so a certificate
 * from another CA counts as no certificate, never as an identity.
 *
 * Consequence for anything else served on the same listener (the registry): TLS does not refuse
 * anonymous clients there, so those handlers must refuse calls whose ctx.peer.spiffeId is undefined
 * — or be served on a separate mTLS listener made with api/grpc serverCredentials().
 */
export function enrolmentServerCredentials(pki: ServerPki): ServerTlsCredentials & {
  /** Swaps in a new server SVID (and/or bundle) for new connections, without a restart. */
  update(pki: ServerPki): void;
} {
  const creds = updatableServerCredentials(pemOf(pki));
  return { ...creds, update: (next) => creds.update(pemOf(next)) };
}

function pemOf(pki: ServerPki): ServerIdentityPem {
  return { bundlePem: pki.ca.bundlePem, certChainPem: pki.serverTlsChainPem, keyPem: pki.server.keyPem };
}
