import { createHash, createPrivateKey, createPublicKey, webcrypto } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AgentError, describe } from '../../errors/index.js';
import { EC_P256 } from './x509-provider.js';
import { toPem } from './pem.js';

/** An EC P-256 key pair as WebCrypto keys (what @peculiar/x509 signs with) plus its PKCS#8 PEM. */
export interface EcKeyPair {
  readonly privateKey: webcrypto.CryptoKey;
  readonly publicKey: webcrypto.CryptoKey;
  /** PKCS#8 PEM of the private key: goes to a 0600 file, never to argv or a log. */
  readonly privateKeyPem: string;
  /** SubjectPublicKeyInfo DER of the public key. */
  readonly spki: Uint8Array;
}

export async function generateEcKeyPair(): Promise<EcKeyPair> {
  const keys = await webcrypto.subtle.generateKey(EC_P256, true, ['sign', 'verify']);
  const pkcs8 = new Uint8Array(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const spki = new Uint8Array(await webcrypto.subtle.exportKey('spki', keys.publicKey));
  return {
    privateKey: keys.privateKey,
    publicKey: keys.publicKey,
    privateKeyPem: toPem('PRIVATE KEY', pkcs8),
    spki,
  };
}

/**
 * Reads an EC P-256 private key (PKCS#8 or SEC1 PEM) back into a key pair. `what` names the file
 * in errors; the key material itself is never part of a message.
 */
export async function importEcKeyPair(pem: string, what: string): Promise<EcKeyPair> {
  let key: KeyObject;
  try {
    key = createPrivateKey(pem);
  } catch (e: unknown) {
    throw new AgentError('FAILED_PRECONDITION', `${what} is not a readable private key: ${describe(e)}`);
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1') {
    throw new AgentError('FAILED_PRECONDITION', `${what} is not an EC P-256 key`);
  }
  const pkcs8 = key.export({ type: 'pkcs8', format: 'der' });
  const spki = new Uint8Array(createPublicKey(key).export({ type: 'spki', format: 'der' }));
  const privateKey = await webcrypto.subtle.importKey('pkcs8', pkcs8, EC_P256, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey('spki', spki, EC_P256, true, ['verify']);
  return { privateKey, publicKey, privateKeyPem: toPem('PRIVATE KEY', new Uint8Array(pkcs8)), spki };
}

/** True when `spki` is an EC P-256 public key. */
export function isEcP256(spki: Uint8Array): boolean {
  return describeKey(spki) === 'EC P-256';
}

/** A short name of a public key's type for messages: `EC P-256`, `EC P-384`, `RSA 2048` … */
export function describeKey(spki: Uint8Array): string {
  let key: KeyObject;
  try {
    key = createPublicKey({ key: Buffer.from(spki), format: 'der', type: 'spki' });
  } catch {
    return 'an unreadable key';
  }
  const details = key.asymmetricKeyDetails;
  switch (key.asymmetricKeyType) {
    case 'ec': {
      const curve = details?.namedCurve;
      const names: Readonly<Record<string, string>> = {
        prime256v1: 'P-256',
        secp384r1: 'P-384',
        secp521r1: 'P-521',
      };
      return `EC ${curve === undefined ? 'unknown curve' : (names[curve] ?? curve)}`;
    }
    case 'rsa':
    case 'rsa-pss':
      return `RSA ${details?.modulusLength ?? ''}`.trim();
    default:
      return key.asymmetricKeyType ?? 'unknown key type';
  }
}

/** SHA-256 of a SubjectPublicKeyInfo: the CA pin carried in tokens (like kubeadm's CA cert hash). */
export function spkiSha256(spki: Uint8Array): Uint8Array {
  return new Uint8Array(createHash('sha256').update(spki).digest());
}

/** How a pin is shown to people: `sha256:<hex>`. */
export function formatPin(pin: Uint8Array): string {
  return `sha256:${Buffer.from(pin).toString('hex')}`;
}
