import { rename, rm } from 'node:fs/promises';
import { clientCredentials, dial } from '../../api/grpc/index.js';
import { EnrolmentService } from '../../api/index.js';
import type { EnrolResponse } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { serverSpiffeId } from '../ca/mesh-ca.js';
import { createAgentCsr } from '../crypto/create-csr.js';
import { generateEcKeyPair } from '../crypto/ec-keys.js';
import { pemBlocks } from '../crypto/pem.js';
import { PUBLIC_FILE_MODE, SECRET_FILE_MODE, syncDir, writeFileAtomic } from '../../host/atomic-write.js';
import type { HostFactsRecord } from '../hosts/host-record.js';
import { acceptResponse } from './accept-response.js';
import { identityFiles } from './identity-files.js';
import type { RevokedMarker } from './identity-files.js';
import { loadAgentIdentity } from './identity-state.js';

export interface RenewHostOptions {
  readonly stateDir: string;
  /** Sent along so `hosts list` shows e.g. the new agent version; optional. */
  readonly hostFacts?: HostFactsRecord;
  readonly timeoutMs?: number;
  readonly clock?: Clock;
  /** Test hook: runs between writing svid.pem and promoting the new key. */
  readonly onStep?: (step: 'svid-persisted') => void | Promise<void>;
}

/**
 * Renews this host's SVID over mTLS with the SVID it holds (the daemon calls it at ½ lifetime ±
 * jitter), with a new key each time, as SPIRE does. Crash safety without a multi-file transaction:
 *  1. the new key goes to svid.next.key (0600) before the CSR is sent;
 *  2. bundle.pem, then svid.pem are replaced atomically (svid.pem now matches the *next* key);
 *  3. svid.next.key is renamed over svid.key.
 * A crash before 2 leaves the old pair (a stray next key is overwritten next time); a crash between
 * 2 and 3 leaves a certificate that matches svid.next.key, which readIdentityState accepts and the
 * next renewHost finishes renaming. identity.json holds nothing that changes. A revoked host gets
 * PERMISSION_DENIED (R8): its files stay, and revoked.json makes readIdentityState report
 * "re-enrolment required" from then on, so the daemon stops and will not start again on them.
 */
export async function renewHost(options: RenewHostOptions): Promise<{ readonly expiresAt: number }> {
  const clock = options.clock ?? systemClock;
  const loaded = await loadAgentIdentity(options.stateDir, clock);
  if (loaded.identity === undefined) {
    const reason =
      loaded.state.state === 're-enrolment-required' ? loaded.state.reason : 'this host is not enrolled';
    throw new AgentError('FAILED_PRECONDITION', `cannot renew: ${reason}`);
  }
  const { identity } = loaded;
  const { stateDir } = options;
  if (identity.keyIsNext) await promoteNextKey(stateDir);
  const trustedCa = pemBlocks(identity.bundlePem, 'CERTIFICATE')[0];
  if (trustedCa === undefined) throw new AgentError('FAILED_PRECONDITION', 'the trust bundle is empty');
  const keys = await generateEcKeyPair();
  await writeFileAtomic(identityFiles.nextKey(stateDir), keys.privateKeyPem, SECRET_FILE_MODE);
  let svidWritten = false;
  const conn = dial(identity.meta.serverUrl, {
    credentials: clientCredentials({
      bundlePem: identity.bundlePem,
      certChainPem: identity.certChainPem,
      keyPem: identity.keyPem,
      expectedServerId: serverSpiffeId(identity.meta.trustDomain),
    }),
  });
  try {
    let res: EnrolResponse;
    try {
      res = await conn.client(EnrolmentService).renew(
        {
          csrDer: await createAgentCsr(keys),
          ...(options.hostFacts ? { host: { ...options.hostFacts } } : {}),
        },
        { timeoutMs: options.timeoutMs ?? 15_000 },
      );
    } catch (e: unknown) {
      if (AgentError.is(e, 'PERMISSION_DENIED')) {
        // Remembered on disk, so a restarted daemon refuses to run on this identity (R8).
        const marker: RevokedMarker = { at: clock.now(), message: e.message };
        await writeFileAtomic(
          identityFiles.revoked(stateDir),
          JSON.stringify(marker) + '\n',
          PUBLIC_FILE_MODE,
        );
      }
      throw e;
    }
    const accepted = acceptResponse(res, keys.spki, trustedCa, { spiffeId: identity.meta.spiffeId });
    await writeFileAtomic(identityFiles.bundle(stateDir), accepted.bundlePem, PUBLIC_FILE_MODE);
    await writeFileAtomic(identityFiles.svid(stateDir), accepted.certChainPem, PUBLIC_FILE_MODE);
    svidWritten = true;
    await options.onStep?.('svid-persisted');
    await promoteNextKey(stateDir);
    return { expiresAt: accepted.expiresAt };
  } catch (e: unknown) {
    // Until svid.pem names the new key, that key is worth nothing: drop it (the old pair stands).
    if (!svidWritten) await rm(identityFiles.nextKey(stateDir), { force: true });
    throw e;
  } finally {
    conn.close();
  }
}

/** svid.next.key becomes svid.key (atomic rename, then the directory is synced). */
async function promoteNextKey(stateDir: string): Promise<void> {
  await rename(identityFiles.nextKey(stateDir), identityFiles.key(stateDir));
  await syncDir(identityFiles.dir(stateDir));
}
