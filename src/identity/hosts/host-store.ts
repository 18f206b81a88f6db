import { AgentError } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import { isConflict } from '../../store/index.js';
import type { Store } from '../../store/index.js';
import { HOST_KEY_PREFIX, decodeHostRecord, encodeHostRecord, hostKey } from './host-record.js';
import type { HostFactsRecord, HostRecord } from './host-record.js';

export interface HostStoreOptions {
  readonly store: Store;
  readonly clock?: Clock;
  readonly log?: Logger;
}

export type NewHost = Omit<HostRecord, 'enrolledAt' | 'lastSeenAt' | 'revokedAt'>;

const MAX_CAS_ATTEMPTS = 100;

/**
 * Enrolled hosts on the control server: added at enrolment, updated at renewal, listed and revoked
 * by the operator. A revoked host keeps its record (so `hosts list` shows it and its renewals get
 * PERMISSION_DENIED) until it enrols again with a new token, which makes a new host id.
 */
export class HostStore {
  readonly #store: Store;
  readonly #clock: Clock;
  readonly #log: Logger;

  constructor(options: HostStoreOptions) {
    this.#store = options.store;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'hosts' });
  }

  async add(host: NewHost): Promise<HostRecord> {
    const now = this.#clock.now();
    const record: HostRecord = { ...host, enrolledAt: now, lastSeenAt: now };
    try {
      await this.#store.put(hostKey(host.hostId), encodeHostRecord(record), { ifModRevision: 0 });
    } catch (e: unknown) {
      if (isConflict(e))
        throw new AgentError('ALREADY_EXISTS', `host ${host.hostId} is already enrolled`, { cause: e });
      throw e;
    }
    this.#log.info(
      { hostId: host.hostId, hostname: host.facts.hostname, tokenId: host.tokenId },
      'host enrolled',
    );
    return record;
  }

  async get(hostId: string): Promise<HostRecord | undefined> {
    const entry = await this.#store.get(hostKey(hostId));
    return entry ? decodeHostRecord(entry.key, entry.value) : undefined;
  }

  async list(): Promise<HostRecord[]> {
    const { entries } = await this.#store.list(HOST_KEY_PREFIX);
    return entries.map((e) => decodeHostRecord(e.key, e.value)).sort((a, b) => a.enrolledAt - b.enrolledAt);
  }

  /**
   * The host an operator means: an exact host id, else the one host with that hostname. NOT_FOUND
   * or INVALID_ARGUMENT (ambiguous, listing the ids) otherwise.
   */
  async find(idOrHostname: string): Promise<HostRecord> {
    const byId = await this.get(idOrHostname);
    if (byId) return byId;
    const named = (await this.list()).filter((h) => h.facts.hostname === idOrHostname);
    const only = named[0];
    if (named.length === 1 && only) return only;
    if (named.length === 0) {
      throw new AgentError('NOT_FOUND', `no enrolled host has the id or hostname "${idOrHostname}"`, {
        hint: 'see the enrolled hosts with `nsm-agent hosts list`',
      });
    }
    throw new AgentError(
      'INVALID_ARGUMENT',
      `${named.length} hosts are named "${idOrHostname}" (${named.map((h) => h.hostId).join(', ')})`,
      { hint: 'name the host by its id' },
    );
  }

  /** Revokes a host: its renewals are refused from now on. Idempotent. */
  async revoke(idOrHostname: string): Promise<HostRecord> {
    const host = await this.find(idOrHostname);
    const updated = await this.#update(host.hostId, (r) =>
      r.revokedAt !== undefined ? r : { ...r, revokedAt: this.#clock.now() },
    );
    this.#log.info({ hostId: host.hostId, hostname: host.facts.hostname }, 'host revoked');
    return updated;
  }

  /**
   * Records a renewal. PERMISSION_DENIED if the host was revoked or is unknown: the check and the
   * write are one compare-and-swap, so a revoke that lands first always wins.
   */
  async renewed(
    hostId: string,
    svid: { readonly serial: string; readonly expiresAt: number },
    facts?: HostFactsRecord,
  ): Promise<HostRecord> {
    return this.#update(hostId, (r) => {
      refuseRevoked(r);
      return {
        ...r,
        facts: facts ?? r.facts,
        svidSerial: svid.serial,
        svidExpiresAt: svid.expiresAt,
        lastSeenAt: this.#clock.now(),
      };
    });
  }

  /**
   * Notes that a host was active (e.g. the registry saw a call from it). Writes at most once per
   * `resolutionMs` (default 1 min) per host, so busy hosts do not turn into a write per call.
   */
  async touch(hostId: string, resolutionMs = 60_000): Promise<void> {
    const now = this.#clock.now();
    await this.#update(hostId, (r) => (now - r.lastSeenAt < resolutionMs ? r : { ...r, lastSeenAt: now }));
  }

  /** Throws PERMISSION_DENIED unless `hostId` is enrolled and not revoked. For renewal and the registry. */
  async requireActive(hostId: string): Promise<HostRecord> {
    const r = await this.get(hostId);
    if (!r) throw unknownHost(hostId);
    refuseRevoked(r);
    return r;
  }

  async #update(hostId: string, change: (r: HostRecord) => HostRecord): Promise<HostRecord> {
    for (let attempt = 0; attempt < MAX_CAS_ATTEMPTS; attempt++) {
      const entry = await this.#store.get(hostKey(hostId));
      if (!entry) throw unknownHost(hostId);
      const before = decodeHostRecord(entry.key, entry.value);
      const after = change(before);
      if (after === before) return before;
      try {
        await this.#store.put(entry.key, encodeHostRecord(after), { ifModRevision: entry.modRevision });
        return after;
      } catch (e: unknown) {
        if (!isConflict(e)) throw e;
      }
    }
    throw new AgentError(
      'UNAVAILABLE',
      `host ${hostId} is being changed by too many requests at once; try again`,
    );
  }
}

function refuseRevoked(r: HostRecord): void {
  if (r.revokedAt === undefined) return;
  throw new AgentError(
    'PERMISSION_DENIED',
    `host ${r.hostId} (${r.spiffeId}) was revoked at ${new Date(r.revokedAt).toISOString()}`,
    { hint: 'this host must be enrolled again with a new token (`nsm-agent enroll --token …`)' },
  );
}

function unknownHost(hostId: string): AgentError {
  return new AgentError('PERMISSION_DENIED', `host ${hostId} is not enrolled in this mesh`, {
    hint: 'enrol it with a token (`nsm-agent enroll --token …`)',
  });
}
