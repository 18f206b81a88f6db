import { mkdir, rename, rm } from 'node:fs/promises';
import { clientCredentials, dial } from '../../api/grpc/index.js';
import { EnrolmentService } from '../../api/index.js';
import type { EnrolResponse } from '../../api/index.js';
import { AgentError, describe } from '../../errors/index.js';
import type { ErrorCode } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import { serverSpiffeId } from '../ca/mesh-ca.js';
import { createAgentCsr } from '../crypto/create-csr.js';
import { formatPin, generateEcKeyPair } from '../crypto/ec-keys.js';
import type { EcKeyPair } from '../crypto/ec-keys.js';
import { PUBLIC_FILE_MODE, SECRET_FILE_MODE, syncDir, writeFileAtomic } from '../../host/atomic-write.js';
import type { HostFactsRecord } from '../hosts/host-record.js';
import { parseToken } from '../tokens/token-format.js';
import { acceptResponse } from './accept-response.js';
import { fetchPinnedCa } from './fetch-server-ca.js';
import { identityFiles } from './identity-files.js';
import type { IdentityMeta } from './identity-files.js';
import { readIdentityState } from './identity-state.js';

/** Step boundaries of an enrolment, in order; `onStep` runs at each (tests inject crashes there). */
export type EnrolStep = 'ca-pinned' | 'key-persisted' | 'svid-received' | 'identity-persisted';

export interface EnrollHostOptions {
  readonly token: string;
  /** e.g. /var/lib/nsm-agent; the identity goes to `<stateDir>/identity/`. */
  readonly stateDir: string;
  readonly hostFacts: HostFactsRecord;
  /**
   * Enrol even if the host already has a valid identity. The old one stays in place until the new
   * SVID is issued, so a refused re-enrolment (bad token, other server down) leaves the host as it
   * was; a crash in the middle of the swap reads as "re-enrolment required".
   */
  readonly replace?: boolean;
  /** Deadline for the handshake and for the Enrol call; default 15 s each. */
  readonly timeoutMs?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
  readonly onStep?: (step: EnrolStep) => void | Promise<void>;
}

export interface EnrolledIdentity {
  readonly spiffeId: string;
  readonly hostId: string;
  readonly trustDomain: string;
  readonly expiresAt: number;
}

/** Server answers that mean "nothing was issued": the half-made identity can be removed. */
const DEFINITE_REFUSALS: ReadonlySet<ErrorCode> = new Set([
  'UNAUTHENTICATED',
  'INVALID_ARGUMENT',
  'PERMISSION_DENIED',
  'FAILED_PRECONDITION',
  'ALREADY_EXISTS',
  'RESOURCE_EXHAUSTED',
]);

/**
 * `nsm-agent enroll`: exchanges a token for this host's SVID (reliability §1.8, R1–R4).
 *  1. Learn the CA from the server's handshake and check it against the token's pin (R3).
 *  2. Open TLS verified against that CA only, expecting `spiffe://<td>/server`; nothing is written
 *     before this succeeds.
 *  3. Make the key and persist it (0600) *before* the CSR leaves the host; Enrol.
 *  4. Check the answer, write svid.pem and bundle.pem, and identity.json last as the commit marker.
 * A crash after 2 leaves a state readIdentityState reports as "re-enrolment required"; a definite
 * refusal from the server (expired or used token, bad request) removes the key again, so a failed
 * enrolment leaves no identity files (R1).
 */
export async function enrollHost(options: EnrollHostOptions): Promise<EnrolledIdentity> {
  const clock = options.clock ?? systemClock;
  const log = (options.log ?? silentLogger()).child({ subsystem: 'enrol' });
  const step = async (s: EnrolStep): Promise<void> => {
    await options.onStep?.(s);
  };
  const { stateDir } = options;
  const token = parseToken(options.token);
  const timeoutMs = options.timeoutMs ?? 15_000;

  const current = await readIdentityState(stateDir, clock);
  if (current.state === 'enrolled' && options.replace !== true) {
    throw new AgentError(
      'ALREADY_EXISTS',
      `this host is already enrolled as ${current.spiffeId} (SVID valid until ${new Date(current.expiresAt).toISOString()})`,
      {
        hint: 'to join again (e.g. another mesh), enrol with --replace; the old identity is kept until the new one is issued',
      },
    );
  }

  const ca = await fetchPinnedCa(token.serverUrl, token.caPin, timeoutMs);
  if (ca.trustDomain === undefined) {
    throw new AgentError(
      'UNAUTHENTICATED',
      `the pinned CA at ${token.serverUrl} does not name its trust domain`,
    );
  }
  log.info(
    { server: token.serverUrl, tokenId: token.id, trustDomain: ca.trustDomain },
    'server CA matches the token pin',
  );
  await step('ca-pinned');

  // The verified connection comes up before anything is written: an impostor that replays the
  // public CA certificate passes the pin probe but not this handshake, and leaves no trace here.
  const conn = dial(token.serverUrl, {
    credentials: clientCredentials({ bundlePem: ca.caPem, expectedServerId: serverSpiffeId(ca.trustDomain) }),
  });
  try {
    // A network deadline: real time, whatever clock the caller passed for timestamps.
    await conn.waitForReady(new Date(Date.now() + timeoutMs));
  } catch (e: unknown) {
    conn.close();
    throw new AgentError(
      'UNAUTHENTICATED',
      `no verified TLS connection to ${token.serverUrl} with the pinned CA as the only root (${describe(e)})`,
      {
        cause: e,
        hint: `the server must present an SVID for spiffe://${ca.trustDomain}/server issued by that CA; nothing was sent or written`,
      },
    );
  }

  const dir = identityFiles.dir(stateDir);
  // Replacing a working identity keeps it until the new one is issued: the new key waits in
  // svid.next.key, so a refused or failed re-enrolment leaves the host on its old identity.
  const keepOld = current.state === 'enrolled';
  const keyPath = keepOld ? identityFiles.nextKey(stateDir) : identityFiles.key(stateDir);
  let keys: EcKeyPair;
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    if (!keepOld) {
      // Remove the commit marker first: what is left of an unusable identity is gone either way.
      await rm(identityFiles.meta(stateDir), { force: true });
      await rm(identityFiles.revoked(stateDir), { force: true });
    }
    await rm(identityFiles.nextKey(stateDir), { force: true });
    await syncDir(dir);
    keys = await generateEcKeyPair();
    await writeFileAtomic(keyPath, keys.privateKeyPem, SECRET_FILE_MODE);
    await step('key-persisted');
  } catch (e: unknown) {
    conn.close();
    throw e;
  }

  const csrDer = await createAgentCsr(keys);
  let res: EnrolResponse;
  try {
    res = await conn.client(EnrolmentService).enrol(
      {
        token: options.token.trim(),
        csrDer,
        host: {
          hostname: options.hostFacts.hostname,
          os: options.hostFacts.os,
          arch: options.hostFacts.arch,
          agentVersion: options.hostFacts.agentVersion,
        },
      },
      { timeoutMs },
    );
  } catch (e: unknown) {
    if (AgentError.is(e) && DEFINITE_REFUSALS.has(e.code)) {
      if (keepOld) await rm(identityFiles.nextKey(stateDir), { force: true });
      else await removeIdentity(stateDir);
      log.warn({ server: token.serverUrl, tokenId: token.id, code: e.code }, 'enrolment refused');
    }
    throw e;
  } finally {
    conn.close();
  }
  await step('svid-received');

  const accepted = acceptResponse(res, keys.spki, ca.caDer);
  if (accepted.trustDomain !== ca.trustDomain) {
    throw new AgentError(
      'INTERNAL',
      `the server issued an SVID in ${accepted.trustDomain}, its CA is ${ca.trustDomain}`,
    );
  }
  const meta: IdentityMeta = {
    version: 1,
    spiffeId: accepted.spiffeId,
    hostId: accepted.hostId,
    trustDomain: accepted.trustDomain,
    serverUrl: token.serverUrl,
    caPin: formatPin(token.caPin),
    enrolledAt: clock.now(),
  };
  await writeFileAtomic(identityFiles.bundle(stateDir), accepted.bundlePem, PUBLIC_FILE_MODE);
  await writeFileAtomic(identityFiles.svid(stateDir), accepted.certChainPem, PUBLIC_FILE_MODE);
  await writeFileAtomic(identityFiles.meta(stateDir), JSON.stringify(meta, null, 2) + '\n', PUBLIC_FILE_MODE);
  if (keepOld) {
    // Until this rename, svid.pem belongs to svid.next.key, which readIdentityState accepts.
    await rename(identityFiles.nextKey(stateDir), identityFiles.key(stateDir));
    await syncDir(dir);
  }
  await step('identity-persisted');
  log.info(
    { spiffeId: accepted.spiffeId, expiresAt: new Date(accepted.expiresAt).toISOString() },
    'host enrolled',
  );
  return {
    spiffeId: accepted.spiffeId,
    hostId: accepted.hostId,
    trustDomain: accepted.trustDomain,
    expiresAt: accepted.expiresAt,
  };
}

/** Removes every identity file (commit marker first). */
async function removeIdentity(stateDir: string): Promise<void> {
  for (const path of [
    identityFiles.meta(stateDir),
    identityFiles.svid(stateDir),
    identityFiles.bundle(stateDir),
    identityFiles.key(stateDir),
    identityFiles.nextKey(stateDir),
    identityFiles.revoked(stateDir),
  ]) {
    await rm(path, { force: true });
  }
  await syncDir(identityFiles.dir(stateDir));
}
