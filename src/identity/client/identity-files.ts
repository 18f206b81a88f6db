import { join } from 'node:path';

/**
 * The agent's identity under `<stateDir>/identity/` (DESIGN §7). identity.json is written last and
 * is the commit marker: without it the other files are leftovers of an interrupted enrolment.
 */
export const identityFiles = {
  dir: (stateDir: string): string => join(stateDir, 'identity'),
  /** PKCS#8 PEM, mode 0600. */
  key: (stateDir: string): string => join(stateDir, 'identity', 'svid.key'),
  /**
   * A renewal's new key, written before its CSR is sent; renamed over svid.key once svid.pem holds
   * the certificate for it.
   */
  nextKey: (stateDir: string): string => join(stateDir, 'identity', 'svid.next.key'),
  /** The SVID, leaf first (PEM). */
  svid: (stateDir: string): string => join(stateDir, 'identity', 'svid.pem'),
  /** The mesh trust bundle (PEM). */
  bundle: (stateDir: string): string => join(stateDir, 'identity', 'bundle.pem'),
  meta: (stateDir: string): string => join(stateDir, 'identity', 'identity.json'),
  /** Written when the server refused a renewal with PERMISSION_DENIED: the host was revoked (R8). */
  revoked: (stateDir: string): string => join(stateDir, 'identity', 'revoked.json'),
} as const;

/** revoked.json: why this host may not run until it is enrolled again. */
export interface RevokedMarker {
  /** ms since the epoch. */
  readonly at: number;
  /** The server's message. */
  readonly message: string;
}

/** identity.json: what stays the same across renewals. Expiry is read from svid.pem itself. */
export interface IdentityMeta {
  readonly version: 1;
  readonly spiffeId: string;
  readonly hostId: string;
  readonly trustDomain: string;
  /** The enrolment/renewal endpoint, from the token. */
  readonly serverUrl: string;
  /** `sha256:<hex>` of the CA the token pinned. */
  readonly caPin: string;
  /** ms since the epoch. */
  readonly enrolledAt: number;
}
