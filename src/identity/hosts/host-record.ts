import { AgentError, describe } from '../../errors/index.js';

/** What an agent reports about its host at enrolment (and may update at renewal). */
export interface HostFactsRecord {
  readonly hostname: string;
  readonly os: string;
  readonly arch: string;
  readonly agentVersion: string;
}

/** An enrolled host as the control server keeps it. Times are ms since the epoch. */
export interface HostRecord {
  readonly hostId: string;
  /** spiffe://<td>/agent/<hostId> */
  readonly spiffeId: string;
  /** The labels of the token it enrolled with. */
  readonly labels: Readonly<Record<string, string>>;
  readonly facts: HostFactsRecord;
  readonly tokenId: string;
  readonly enrolledAt: number;
  /** Last enrolment or renewal (or activity reported through HostStore.touch). */
  readonly lastSeenAt: number;
  readonly svidSerial: string;
  readonly svidExpiresAt: number;
  readonly revokedAt?: number;
}

export const HOST_KEY_PREFIX = 'identity/hosts/';

export function hostKey(hostId: string): string {
  return HOST_KEY_PREFIX + hostId;
}

export function encodeHostRecord(r: HostRecord): Uint8Array {
  return new TextEncoder().encode(JSON.stringify(r));
}

export function decodeHostRecord(key: string, bytes: Uint8Array): HostRecord {
  try {
    const r = JSON.parse(new TextDecoder().decode(bytes)) as HostRecord;
    if (typeof r.hostId !== 'string' || typeof r.spiffeId !== 'string') throw new Error('fields missing');
    return r;
  } catch (e: unknown) {
    throw new AgentError('INTERNAL', `host record ${key} in the store is unreadable: ${describe(e)}`, {
      cause: e,
    });
  }
}
