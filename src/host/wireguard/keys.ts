import { createPrivateKey, createPublicKey } from 'node:crypto';
import { AgentError } from '../../errors/index.js';
import { systemRandom } from '../random.js';
import type { Random } from '../random.js';

/**
 * WireGuard keys are 32-byte Curve25519 keys. `wg` and configs write them in base64 (44 chars);
 * the UAPI socket wants lowercase hex (64 chars). Everything in the agent holds base64 and converts
 * at the UAPI edge.
 */
export type WireGuardKey = string;

const pkcs8Prefix = Buffer.from('302e020100300506032b656e04220420', 'hex');
const base64Pattern = /^[A-Za-z0-9+/]{42}[AEIMQUYcgkosw048]=$/;

/** A new private key, clamped as `wg genkey` does, in base64. */
export function generatePrivateKey(random: Random = systemRandom): WireGuardKey {
  const k = Buffer.from(random.bytes(32));
  k[0] = (k[0] ?? 0) & 248;
  k[31] = ((k[31] ?? 0) & 127) | 64;
  return k.toString('base64');
}

/** The public key of a base64 private key (what `wg pubkey` prints). */
export function publicKeyOf(privateKey: WireGuardKey): WireGuardKey {
  const der = Buffer.concat([pkcs8Prefix, keyBytes(privateKey, 'private key')]);
  const spki = createPublicKey(createPrivateKey({ key: der, format: 'der', type: 'pkcs8' })).export({
    format: 'der',
    type: 'spki',
  });
  return spki.subarray(spki.length - 32).toString('base64');
}

export function isWireGuardKey(text: string): boolean {
  return base64Pattern.test(text);
}

export function keyToHex(key: WireGuardKey, what = 'key'): string {
  return keyBytes(key, what).toString('hex');
}

export function keyFromHex(hex: string, what = 'key'): WireGuardKey {
  if (!/^[0-9a-f]{64}$/.test(hex)) {
    throw new AgentError('INVALID_ARGUMENT', `WireGuard ${what} is not 64 lowercase hex digits`, {
      hint: 'the UAPI peer sent something unexpected; check the wireguard-go version',
    });
  }
  return Buffer.from(hex, 'hex').toString('base64');
}

function keyBytes(key: WireGuardKey, what: string): Buffer {
  if (!isWireGuardKey(key)) {
    // Never echo the value: it may be a private key.
    throw new AgentError('INVALID_ARGUMENT', `WireGuard ${what} is not a base64 32-byte key`, {
      hint: "generate one with 'wg genkey' (private) or 'wg pubkey' (public): 44 characters ending in '='",
    });
  }
  return Buffer.from(key, 'base64');
}

/**
 * Refuses to run a command whose argv contains a secret in any of its encodings: argv is readable
 * by every user in /proc/<pid>/cmdline and is quoted in error messages.
 */
export function assertNotInArgv(argv: readonly string[], secret: WireGuardKey): void {
  const forms = [secret, Buffer.from(secret, 'base64').toString('hex')];
  if (argv.some((a) => forms.some((f) => a.includes(f)))) {
    throw new AgentError(
      'INTERNAL',
      `refusing to run '${argv.slice(0, 3).join(' ')}': a private key is in its argv`,
      {
        hint: 'this is a bug: secrets go through stdin or a file',
      },
    );
  }
}
