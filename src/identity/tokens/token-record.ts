import { AgentError, describe } from '../../errors/index.js';

/** A token as the server stores it: the secret only as its SHA-256. */
export interface TokenRecord {
  readonly id: string;
  /** Hex SHA-256 of the 256-bit secret. A plain hash suffices: the secret is random, not a password. */
  readonly secretSha256: string;
  /** ms since the epoch. */
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usesAllowed: number;
  readonly usesLeft: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly revokedAt?: number;
  /** When the last use was taken (ms since the epoch); absent while unused. */
  readonly lastUsedAt?: number;
}

/** What `token list` shows: everything except the secret's hash. */
export interface TokenInfo {
  readonly id: string;
  readonly createdAt: number;
  readonly expiresAt: number;
  readonly usesAllowed: number;
  readonly usesLeft: number;
  readonly labels: Readonly<Record<string, string>>;
  readonly revokedAt: number | undefined;
  readonly lastUsedAt: number | undefined;
  /** `used` once every use is taken; the record stays (so a reuse is explained) until pruned. */
  readonly state: 'active' | 'used' | 'expired' | 'revoked';
}

export const TOKEN_KEY_PREFIX = 'identity/tokens/';

export function tokenKey(id: string): string {
  return TOKEN_KEY_PREFIX + id;
}

export function encodeTokenRecord(r: TokenRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r));
}

export function decodeTokenRecord(key: string, bytes: Uint8Array): TokenRecord {
  try {
    const r = JSON.parse(new TextDecoder().decode(bytes)) as TokenRecord;
    if (typeof r.id !== 'string' || typeof r.secretSha256 !== 'string' || typeof r.usesLeft !== 'number') {
      throw new Error('fields missing');
    }
    return r;
  } catch (e: unknown) {
    throw new AgentError('INTERNAL', `token record ${key} in the store is unreadable: ${describe(e)}`, {
      cause: e,
    });
  }
}

export function tokenInfo(r: TokenRecord, now: number): TokenInfo {
  const state =
    r.revokedAt !== undefined
      ? 'revoked'
      : now >= r.expiresAt
        ? 'expired'
        : r.usesLeft <= 0
          ? 'used'
          : 'active';
  return {
    id: r.id,
    createdAt: r.createdAt,
    expiresAt: r.expiresAt,
    usesAllowed: r.usesAllowed,
    usesLeft: r.usesLeft,
    labels: r.labels,
    revokedAt: r.revokedAt,
    lastUsedAt: r.lastUsedAt,
    state,
  };
}
