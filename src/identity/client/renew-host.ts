import { clientCredentials, dial } from '../../api/grpc/index.js';
import { EnrolmentService } from '../../api/index.js';
import type { EnrolResponse } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { serverSpiffeId } from '../ca/mesh-ca.js';
import { createAgentCsr } from '../crypto/create-csr.js';
import { importEcKeyPair } from '../crypto/ec-keys.js';
import { pemBlocks } from '../crypto/pem.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../fs/atomic-write.js';
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
}

/**
 * Renews this host's SVID over mTLS with the SVID it holds (the daemon calls it at ½ lifetime ±
 * jitter). The key is kept: only svid.pem and bundle.pem change, each replaced atomically, and
 * identity.json holds nothing that changes, so a crash between the two writes leaves a valid pair
 * (a new certificate for the same key, and a bundle that still holds the CA). A revoked host gets
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
  const keys = await importEcKeyPair(identity.keyPem, identityFiles.key(options.stateDir));
  const trustedCa = pemBlocks(identity.bundlePem, 'CERTIFICATE')[0];
  if (trustedCa === undefined) throw new AgentError('FAILED_PRECONDITION', 'the trust bundle is empty');
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
          identityFiles.revoked(options.stateDir),
          JSON.stringify(marker) + '\n',
          PUBLIC_FILE_MODE,
        );
      }
      throw e;
    }
    const accepted = acceptResponse(res, keys.spki, trustedCa, { spiffeId: identity.meta.spiffeId });
    await writeFileAtomic(identityFiles.bundle(options.stateDir), accepted.bundlePem, PUBLIC_FILE_MODE);
    await writeFileAtomic(identityFiles.svid(options.stateDir), accepted.certChainPem, PUBLIC_FILE_MODE);
    return { expiresAt: accepted.expiresAt };
  } finally {
    conn.close();
  }
}
