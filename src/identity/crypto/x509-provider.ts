// @peculiar/x509 resolves its ASN.1 parsers through tsyringe, which needs the Reflect metadata
// polyfill installed before x509 is evaluated. This import must stay above the x509 import.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

export { x509 };

/** ECDSA P-256 with SHA-256: the only key and signature type of the mesh (DESIGN §5). */
export const EC_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/**
 * Points @peculiar/x509 at Node's WebCrypto. Called by every function that makes or signs
 * certificates, not at import: importing a module must not change process-wide state.
 */
export function useNodeCrypto(): void {
  x509.cryptoProvider.set(webcrypto);
}
