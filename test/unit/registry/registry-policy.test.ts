import { X509Certificate } from 'node:crypto';
import test from 'ava';
import { mintToken } from '../../../src/api/token/index.js';
import { DEFAULT_REGISTRY_POLICIES, evaluatePolicies } from '../../../src/registry/index.js';
import type { RegistryPolicyInput } from '../../../src/registry/index.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';

const NSE_ID = 'spiffe://mesh.test/nse';
const MGR_ID = 'spiffe://mesh.test/nsmgr';
const REG_ID = 'spiffe://mesh.test/server';

async function keys(): Promise<Record<'nse' | 'mgr' | 'reg', { keyPem: string; cert: X509Certificate }>> {
  const ca = await createTestCa('mesh.test');
  const [nse, mgr, reg] = await Promise.all([
    issueSvid(ca, NSE_ID),
    issueSvid(ca, MGR_ID),
    issueSvid(ca, REG_ID),
  ]);
  const k = (s: typeof nse) => ({ keyPem: s.keyPem, cert: new X509Certificate(s.certPem) });
  return { nse: k(nse), mgr: k(mgr), reg: k(reg) };
}

const now = Date.UTC(2026, 0, 1);
const exp = now + 60_000;

test('a relayed path NSE → nsmgr → registry passes every default policy; each broken link names its policy', async (t) => {
  const k = await keys();
  const nseTok = mintToken({ privateKey: k.nse.keyPem, subject: NSE_ID, audience: MGR_ID, expiresAtMs: exp });
  const mgrTok = mintToken({ privateKey: k.mgr.keyPem, subject: MGR_ID, audience: REG_ID, expiresAtMs: exp });
  const regTok = mintToken({ privateKey: k.reg.keyPem, subject: REG_ID, audience: MGR_ID, expiresAtMs: exp });
  const base: RegistryPolicyInput = {
    operation: 'Register',
    resource: 'network service endpoint',
    resourceName: 'nse-1',
    resourceId: NSE_ID,
    owner: undefined,
    segments: [{ token: nseTok }, { token: mgrTok }, { token: regTok }],
    index: 2,
    peerCertificate: k.mgr.cert,
    nowMs: now,
    peerTokenProblem: undefined,
    pathMissing: false,
  };
  t.is(evaluatePolicies(DEFAULT_REGISTRY_POLICIES, base), undefined);
  t.is(
    evaluatePolicies(DEFAULT_REGISTRY_POLICIES, { ...base, owner: NSE_ID }),
    undefined,
    'the owner refreshes',
  );

  const policyOf = (input: RegistryPolicyInput): unknown =>
    evaluatePolicies(DEFAULT_REGISTRY_POLICIES, input)?.details.policy;
  t.is(policyOf({ ...base, owner: MGR_ID }), 'client_allowed');
  t.is(
    policyOf({ ...base, peerCertificate: k.nse.cert }),
    'prev_token_signed',
    'the peer is not who signed segment 1',
  );
  t.is(policyOf({ ...base, peerCertificate: undefined }), 'prev_token_signed');
  t.is(policyOf({ ...base, nowMs: exp }), 'tokens_expired', 'exp must be strictly after now');
  const wrongAud = mintToken({
    privateKey: k.nse.keyPem,
    subject: NSE_ID,
    audience: REG_ID,
    expiresAtMs: exp,
  });
  t.is(
    policyOf({ ...base, segments: [{ token: wrongAud }, { token: mgrTok }, { token: regTok }] }),
    'tokens_chained',
  );
  t.is(
    policyOf({ ...base, segments: [{ token: 'garbage' }, { token: mgrTok }, { token: regTok }] }),
    'tokens_valid',
  );
  t.is(policyOf({ ...base, segments: [], index: 0, pathMissing: true }), 'prev_token_signed');
});
