import { X509Certificate } from 'node:crypto';
import { createTokenSigner } from '../../../src/api/token/index.js';
import type { TokenSigner } from '../../../src/api/token/index.js';
import type { Clock } from '../../../src/host/clock.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';
import type { TestSvid } from '../../helpers/pki.js';

export const NSC_ID = 'spiffe://mesh.test/agent/nsc';
export const MGR_ID = 'spiffe://mesh.test/agent/nsmgr';
export const OTHER_ID = 'spiffe://mesh.test/agent/other';

export interface Identity {
  readonly svid: TestSvid;
  readonly cert: X509Certificate;
  signer(clock: Clock, maxLifetimeMs?: number): TokenSigner;
}

/** Three SVIDs of one test mesh: a client, its nsmgr, and someone else. */
export async function identities(): Promise<Record<'nsc' | 'mgr' | 'other', Identity>> {
  const ca = await createTestCa('mesh.test');
  const [nsc, mgr, other] = await Promise.all([
    issueSvid(ca, NSC_ID),
    issueSvid(ca, MGR_ID),
    issueSvid(ca, OTHER_ID),
  ]);
  const id = (svid: TestSvid): Identity => ({
    svid,
    cert: new X509Certificate(svid.certPem),
    signer: (clock, maxLifetimeMs) =>
      createTokenSigner({
        spiffeId: svid.spiffeId,
        certificatePem: svid.certPem,
        privateKeyPem: svid.keyPem,
        clock,
        ...(maxLifetimeMs !== undefined ? { maxLifetimeMs } : {}),
      }),
  });
  return { nsc: id(nsc), mgr: id(mgr), other: id(other) };
}

/** grpc-js-like metadata for the server side of a test: one value per key. */
export function metadataOf(values: Record<string, string>): { get(key: string): string[] } {
  return {
    get: (key) => {
      const v = values[key];
      return v === undefined ? [] : [v];
    },
  };
}
