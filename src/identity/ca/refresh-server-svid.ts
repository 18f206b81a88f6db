import { createPublicKey } from 'node:crypto';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { PUBLIC_FILE_MODE, writeFileAtomic } from '../../host/atomic-write.js';
import { DEFAULT_SERVER_SVID_TTL_MS } from './init-ca.js';
import { issueSvid } from './issue-svid.js';
import { caFiles } from './mesh-ca.js';
import type { ServerPki } from './mesh-ca.js';

export interface RefreshServerSvidOptions {
  readonly dataDir: string;
  readonly ttlMs?: number;
  readonly clock?: Clock;
}

/**
 * Re-issues the server's SVID when less than half of its lifetime is left (call it at `server run`
 * start and then daily; hand the result to enrolmentServerCredentials(...).update). The key is
 * kept, so only server.pem changes, in one atomic rename: a crash leaves the old or the new
 * certificate, both matching the key. Returns the same object when nothing was due.
 */
export async function refreshServerSvid(
  pki: ServerPki,
  options: RefreshServerSvidOptions,
): Promise<ServerPki> {
  const clock = options.clock ?? systemClock;
  const now = clock.now();
  const { notBefore, notAfter } = pki.server;
  if (now < notBefore + (notAfter - notBefore) / 2) return pki;
  const spki = new Uint8Array(createPublicKey(pki.server.keyPem).export({ type: 'spki', format: 'der' }));
  const svid = await issueSvid(pki.ca, {
    spiffeId: pki.server.spiffeId,
    publicKeySpki: spki,
    ttlMs: options.ttlMs ?? DEFAULT_SERVER_SVID_TTL_MS,
    clock,
  });
  await writeFileAtomic(caFiles.serverCert(options.dataDir), svid.certPem, PUBLIC_FILE_MODE);
  return {
    ...pki,
    server: { ...svid, keyPem: pki.server.keyPem },
    serverTlsChainPem: svid.certPem + pki.ca.certPem,
  };
}
