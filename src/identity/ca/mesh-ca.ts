import { join } from 'node:path';
import type { EcKeyPair } from '../crypto/ec-keys.js';

/** The mesh CA as the control server holds it: the root certificate and its signing key. */
export interface MeshCa {
  readonly trustDomain: string;
  readonly certDer: Uint8Array;
  readonly certPem: string;
  /** ms since the epoch. */
  readonly notAfter: number;
  readonly keys: EcKeyPair;
  /** SHA-256 of the CA's SubjectPublicKeyInfo: what tokens pin. */
  readonly pin: Uint8Array;
  /** The trust bundle handed to hosts: today the one root. A CA rotation would add the next one here. */
  readonly bundleDer: readonly Uint8Array[];
  readonly bundlePem: string;
}

/** An X.509-SVID fresh from the CA (no key: the key stays with whoever made the CSR). */
export interface IssuedSvid {
  readonly spiffeId: string;
  readonly certDer: Uint8Array;
  readonly certPem: string;
  /** Hex serial number. */
  readonly serial: string;
  /** ms since the epoch. */
  readonly notBefore: number;
  readonly notAfter: number;
}

/** An SVID together with its private key (server and tool identities, whose keys we make). */
export interface SvidWithKey extends IssuedSvid {
  /** PKCS#8 PEM; write it 0600, never log it. */
  readonly keyPem: string;
}

/**
 * What `server init` creates and `server run` loads. `serverTlsChainPem` is the server SVID followed
 * by the CA certificate: an enrolling host has only the CA's pin, so the server sends the CA in the
 * handshake for the host to find and check against the pin (client/fetch-server-ca.ts).
 */
export interface ServerPki {
  readonly ca: MeshCa;
  readonly server: SvidWithKey;
  readonly serverTlsChainPem: string;
}

/** Files under `<dataDir>/ca/`. ca.pem is written last: its presence marks a complete init. */
export const caFiles = {
  dir: (dataDir: string): string => join(dataDir, 'ca'),
  caKey: (dataDir: string): string => join(dataDir, 'ca', 'ca.key'),
  caCert: (dataDir: string): string => join(dataDir, 'ca', 'ca.pem'),
  serverKey: (dataDir: string): string => join(dataDir, 'ca', 'server.key'),
  serverCert: (dataDir: string): string => join(dataDir, 'ca', 'server.pem'),
  bundle: (dataDir: string): string => join(dataDir, 'ca', 'bundle.pem'),
} as const;

/** `spiffe://<td>/server`: the control server's identity. */
export function serverSpiffeId(trustDomain: string): string {
  return `spiffe://${trustDomain}/server`;
}

/** `spiffe://<td>/agent/<hostId>`: an enrolled host's identity. */
export function agentSpiffeId(trustDomain: string, hostId: string): string {
  return `spiffe://${trustDomain}/agent/${hostId}`;
}
