import { createHash, timingSafeEqual } from 'node:crypto';
import { parseGrpcUrl } from '../../api/grpc/index.js';
import { AgentError } from '../../errors/index.js';
import { runPeriodically, systemClock, systemRandom } from '../../host/index.js';
import type { Clock, Random } from '../../host/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import { isConflict } from '../../store/index.js';
import type { Store } from '../../store/index.js';
import { checkLabels } from './check-labels.js';
import { TOKEN_ID_BYTES, TOKEN_SECRET_BYTES, formatToken, parseToken } from './token-format.js';
import type { EnrolmentToken } from './token-format.js';
import {
  TOKEN_KEY_PREFIX,
  decodeTokenRecord,
  encodeTokenRecord,
  tokenInfo,
  tokenKey,
} from './token-record.js';
import type { TokenInfo, TokenRecord } from './token-record.js';

export interface TokenStoreOptions {
  readonly store: Store;
  readonly clock?: Clock;
  /** Source of token ids and secrets; the default is the OS CSPRNG. */
  readonly random?: Random;
  readonly log?: Logger;
}

export interface CreateTokenOptions {
  /** Where hosts reach the enrolment service, tcp://host:port. */
  readonly serverUrl: string;
  /** SHA-256 of the CA SubjectPublicKeyInfo (MeshCa.pin). */
  readonly caPin: Uint8Array;
  /** Default 1 h; SPIRE's default is 10 min. Tokens are meant to be used right away. */
  readonly ttlMs?: number;
  /** How many hosts may enrol with it; default 1. */
  readonly uses?: number;
  /** Copied onto every host enrolled with the token. */
  readonly labels?: Readonly<Record<string, string>>;
}

export interface CreatedToken {
  /** The string to hand to `nsm-agent enroll --token`; shown once, never stored. */
  readonly token: string;
  readonly info: TokenInfo;
}

export const DEFAULT_TOKEN_TTL_MS = 3600_000;
const MAX_TOKEN_TTL_MS = 365 * 24 * 3600_000;
const MAX_USES = 100_000;
/** Lost compare-and-swaps before giving up; each loss means another consumer made progress. */
const MAX_CAS_ATTEMPTS = 1000;

const NEW_TOKEN_HINT = 'create a new one with `nsm-agent token create` on the control server';

/**
 * Enrolment tokens on the control server (issue B §2): created with a secret that only the
 * returned string holds, listed and revoked by id, consumed atomically with the store's
 * compare-and-swap so N uses admit exactly N hosts however many race.
 */
export class TokenStore {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #random: Random;
  readonly #log: Logger;

  constructor(options: TokenStoreOptions) {
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#random = options.random ?? systemRandom;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'tokens' });
  }

  async create(options: CreateTokenOptions): Promise<CreatedToken> {
    const ttlMs = options.ttlMs ?? DEFAULT_TOKEN_TTL_MS;
    if (!Number.isFinite(ttlMs) || ttlMs <= 0 || ttlMs > MAX_TOKEN_TTL_MS) {
      throw new AgentError('INVALID_ARGUMENT', 'a token lifetime must be more than 0 and at most 365 days', {
        hint: 'e.g. --ttl 1h',
      });
    }
    const uses = options.uses ?? 1;
    if (!Number.isInteger(uses) || uses < 1 || uses > MAX_USES) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `token uses must be a whole number from 1 to ${MAX_USES}, got ${uses}`,
        { hint: 'e.g. --uses 1 for one host, --uses 20 for a batch of 20' },
      );
    }
    parseGrpcUrl(options.serverUrl);
    const labels = checkLabels(options.labels ?? {});
    const token: EnrolmentToken = {
      id: Buffer.from(this.#random.bytes(TOKEN_ID_BYTES)).toString('hex'),
      serverUrl: options.serverUrl,
      caPin: options.caPin,
      secret: this.#random.bytes(TOKEN_SECRET_BYTES),
    };
    const text = formatToken(token);
    const now = this.#clock.now();
    const record: TokenRecord = {
      id: token.id,
      secretSha256: sha256Hex(token.secret),
      createdAt: now,
      expiresAt: now + ttlMs,
      usesAllowed: uses,
      usesLeft: uses,
      labels,
    };
    try {
      await this.#store.put(tokenKey(token.id), encodeTokenRecord(record), { ifModRevision: 0 });
    } catch (e: unknown) {
      if (isConflict(e))
        throw new AgentError('INTERNAL', 'token id collision; run token create again', { cause: e });
      throw e;
    }
    this.#log.info(
      { tokenId: token.id, uses, expiresAt: new Date(record.expiresAt).toISOString() },
      'token created',
    );
    return { token: text, info: tokenInfo(record, now) };
  }

  /** Every stored token (active, expired and revoked ones not yet burned), oldest first. */
  async list(): Promise<TokenInfo[]> {
    const { entries } = await this.#store.list(TOKEN_KEY_PREFIX);
    const now = this.#clock.now();
    return entries
      .map((e) => tokenInfo(decodeTokenRecord(e.key, e.value), now))
      .sort((a, b) => a.createdAt - b.createdAt || a.id.localeCompare(b.id));
  }

  /** Marks a token revoked: the next attempt with it is refused (and burns it). NOT_FOUND if unknown. */
  async revoke(id: string): Promise<TokenInfo> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.#store.get(tokenKey(id));
      if (!entry) {
        throw new AgentError('NOT_FOUND', `there is no token ${id} (it may have ended and been removed)`, {
          hint: 'see the tokens that exist with `nsm-agent token list`',
        });
      }
      const record = decodeTokenRecord(entry.key, entry.value);
      const now = this.#clock.now();
      if (record.revokedAt !== undefined) return tokenInfo(record, now);
      const revoked: TokenRecord = { ...record, revokedAt: now };
      try {
        await this.#store.put(entry.key, encodeTokenRecord(revoked), { ifModRevision: entry.modRevision });
      } catch (e: unknown) {
        if (isConflict(e)) continue;
        throw e;
      }
      this.#log.info({ tokenId: id }, 'token revoked');
      return tokenInfo(revoked, now);
    }
    throw busy(id);
  }

  /**
   * Uses a token once. Order, after SPIRE: look it up by id; check the secret (a wrong secret does
   * not burn it, so knowing an id from `token list` is not enough to destroy tokens); then burn the
   * use — and only then check expiry and revocation, so a failed attempt still burns the token.
   * Records stay after their last use (until {@link prune} removes them after expiry), so a reuse
   * is refused saying it was used, and when; an unknown id and a wrong secret share one message.
   * Every refusal is UNAUTHENTICATED.
   */
  async consume(tokenText: string): Promise<TokenInfo> {
    const token = parseToken(tokenText);
    const presented = Buffer.from(sha256Hex(token.secret), 'hex');
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.#store.get(tokenKey(token.id));
      if (!entry) throw unknownToken(token.id);
      const record = decodeTokenRecord(entry.key, entry.value);
      const stored = Buffer.from(record.secretSha256, 'hex');
      if (stored.length !== presented.length || !timingSafeEqual(stored, presented)) {
        this.#log.warn({ tokenId: token.id }, 'token presented with a wrong secret');
        throw unknownToken(token.id);
      }
      const now = this.#clock.now();
      const dead = record.revokedAt !== undefined || now >= record.expiresAt;
      if (record.usesLeft <= 0 && !dead) {
        this.#log.warn({ tokenId: token.id }, 'used-up token presented again');
        throw usedUp(record);
      }
      if (record.usesLeft > 0) {
        const left = dead ? 0 : record.usesLeft - 1;
        const next: TokenRecord = dead
          ? { ...record, usesLeft: 0 }
          : { ...record, usesLeft: left, lastUsedAt: now };
        try {
          await this.#store.put(entry.key, encodeTokenRecord(next), { ifModRevision: entry.modRevision });
        } catch (e: unknown) {
          if (isConflict(e)) continue; // someone else used it meanwhile: look again
          throw e;
        }
        if (!dead) {
          this.#log.info({ tokenId: token.id, usesLeft: left }, 'token used');
          return tokenInfo(next, now);
        }
      }
      if (record.revokedAt !== undefined) {
        this.#log.warn({ tokenId: token.id }, 'revoked token presented; burned');
        throw new AgentError(
          'UNAUTHENTICATED',
          `token ${token.id} was revoked at ${new Date(record.revokedAt).toISOString()}`,
          { hint: NEW_TOKEN_HINT, details: { reason: 'revoked', tokenId: token.id } },
        );
      }
      this.#log.warn({ tokenId: token.id }, 'expired token presented; burned');
      throw new AgentError(
        'UNAUTHENTICATED',
        `token ${token.id} expired at ${new Date(record.expiresAt).toISOString()}; ${NEW_TOKEN_HINT}`,
        { details: { reason: 'expired', tokenId: token.id } },
      );
    }
    throw busy(token.id);
  }

  /**
   * Prunes now and then every `everyMs` (default 1 h), keeping ended tokens for `graceMs` (default
   * 1 day) so `token list` and a late retry still explain them. Failures are logged, never thrown;
   * stop() cancels the timer and waits for a prune in flight (call it before closing the store).
   */
  startPruning(options: { everyMs?: number; graceMs?: number } = {}): { stop(): Promise<void> } {
    const everyMs = options.everyMs ?? 3600_000;
    const graceMs = options.graceMs ?? 24 * 3600_000;
    return runPeriodically(this.#clock, async () => {
      try {
        const removed = await this.prune(graceMs);
        if (removed > 0) this.#log.info({ removed }, 'ended tokens removed');
      } catch (e: unknown) {
        this.#log.warn({ err: e }, 'could not remove ended tokens; will try again');
      }
      return everyMs;
    });
  }

  /** Deletes records of tokens that expired or were revoked before `now - graceMs`; returns how many. */
  async prune(graceMs = 0): Promise<number> {
    const { entries } = await this.#store.list(TOKEN_KEY_PREFIX);
    const cutoff = this.#clock.now() - graceMs;
    let removed = 0;
    for (const e of entries) {
      const r = decodeTokenRecord(e.key, e.value);
      if (Math.min(r.expiresAt, r.revokedAt ?? Infinity) > cutoff) continue;
      try {
        const res = await this.#store.delete(e.key, { ifModRevision: e.modRevision });
        if (res.deleted) removed++;
      } catch (err: unknown) {
        if (!isConflict(err)) throw err;
      }
    }
    return removed;
  }
}

function sha256Hex(secret: Uint8Array): string {
  return createHash('sha256').update(secret).digest('hex');
}

function unknownToken(id: string): AgentError {
  return new AgentError(
    'UNAUTHENTICATED',
    `token ${id} is not valid on this server: it was not created here, its secret is wrong, or it ended (used, expired or revoked) long enough ago to be removed`,
    {
      hint: 'check that the whole token was copied, then ask the mesh operator for a new one (`nsm-agent token create` on the control server)',
      details: { reason: 'unknown', tokenId: id },
    },
  );
}

function usedUp(r: TokenRecord): AgentError {
  const when = r.lastUsedAt === undefined ? '' : `, last at ${new Date(r.lastUsedAt).toISOString()}`;
  const uses = r.usesAllowed === 1 ? 'its one use' : `all ${r.usesAllowed} of its uses`;
  return new AgentError('UNAUTHENTICATED', `token ${r.id} has already been used (${uses} taken${when})`, {
    hint: NEW_TOKEN_HINT,
    details: { reason: 'used', tokenId: r.id },
  });
}

function busy(id: string): AgentError {
  return new AgentError(
    'UNAVAILABLE',
    `token ${id} is being changed by too many requests at once; try again`,
  );
}
