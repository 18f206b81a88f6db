import { Buffer } from 'node:buffer';
import { AgentError } from '../errors/index.js';

/** Largest key, in UTF-8 bytes. */
export const MAX_KEY_BYTES = 4096;
/** Largest value: 1 MiB, under etcd's default 1.5 MiB request limit so every store accepts the same. */
export const MAX_VALUE_BYTES = 1024 * 1024;
/** Longest lease: a day. Registry leases are minutes; anything longer is a unit mistake. */
export const MAX_LEASE_TTL_MS = 24 * 60 * 60 * 1000;

/** Throws INVALID_ARGUMENT unless `key` is a non-empty, well-formed string within MAX_KEY_BYTES. */
export function checkKey(key: string): void {
  if (typeof key !== 'string' || key.length === 0) {
    throw new AgentError('INVALID_ARGUMENT', 'store key is empty', { hint: 'pass a non-empty key' });
  }
  const bytes = Buffer.byteLength(key, 'utf8');
  if (bytes > MAX_KEY_BYTES) {
    throw new AgentError('INVALID_ARGUMENT', `store key is ${bytes} bytes, the limit is ${MAX_KEY_BYTES}`, {
      hint: 'use a shorter key (hash long names)',
    });
  }
  if (Buffer.from(key, 'utf8').toString('utf8') !== key) {
    throw new AgentError('INVALID_ARGUMENT', 'store key is not well-formed Unicode (lone surrogate)', {
      hint: 'build keys from valid strings',
    });
  }
}

/** Throws INVALID_ARGUMENT unless `value` is bytes within MAX_VALUE_BYTES. */
export function checkValue(value: Uint8Array): void {
  if (!(value instanceof Uint8Array)) {
    throw new AgentError('INVALID_ARGUMENT', 'store value must be a Uint8Array', {
      hint: 'encode the value to bytes first',
    });
  }
  if (value.byteLength > MAX_VALUE_BYTES) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `store value is ${value.byteLength} bytes, the limit is ${MAX_VALUE_BYTES}`,
      { hint: 'store large objects elsewhere and keep a reference in the store' },
    );
  }
}

/** Throws INVALID_ARGUMENT unless `ttlMs` is a positive whole number of milliseconds within limits. */
export function checkTtl(ttlMs: number): void {
  if (!Number.isInteger(ttlMs) || ttlMs <= 0 || ttlMs > MAX_LEASE_TTL_MS) {
    throw new AgentError('INVALID_ARGUMENT', `lease TTL ${ttlMs} ms is out of range`, {
      hint: `pass a whole number of milliseconds between 1 and ${MAX_LEASE_TTL_MS}`,
    });
  }
}

/** Throws INVALID_ARGUMENT unless `rev` is a usable ifModRevision (a whole number ≥ 0). */
export function checkRevision(rev: number, what: string): void {
  if (!Number.isSafeInteger(rev) || rev < 0) {
    throw new AgentError('INVALID_ARGUMENT', `${what} ${rev} is not a revision`, {
      hint: 'pass a whole number ≥ 0 taken from an Entry or a ListResult',
    });
  }
}
