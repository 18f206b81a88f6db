import test from 'ava';
import { parseSpiffeId, spiffeIdFromCertificate } from '../../../src/api/grpc/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { badSvids, createTestCa, issueSvid } from '../../helpers/pki.js';

test('a well-formed leaf SVID yields its SPIFFE ID from the DER', async (t) => {
  const ca = await createTestCa('mesh.test');
  const svid = await issueSvid(ca, 'spiffe://mesh.test/agent/host-1');
  t.is(spiffeIdFromCertificate(svid.der), 'spiffe://mesh.test/agent/host-1');
});

test('malformed SVIDs are refused with UNAUTHENTICATED and the reason (R7)', async (t) => {
  const ca = await createTestCa('mesh.test');
  const id = 'spiffe://mesh.test/agent/host-1';
  const cases = [
    [await badSvids.twoUriSans(ca, id), /2 URI SANs/],
    [await badSvids.caLeaf(ca, id), /cA=true/],
    [await badSvids.keyCertSign(ca, id), /keyCertSign/],
    [await badSvids.notSpiffe(ca), /scheme must be spiffe/],
    [await badSvids.emptyPath(ca), /path is empty/],
    [await issueSvid(ca, id, { uriSans: [] }), /0 URI SANs/],
  ] as const;
  for (const [svid, reason] of cases) {
    const e = t.throws(() => spiffeIdFromCertificate(svid.der), { instanceOf: AgentError });
    t.is(e.code, 'UNAUTHENTICATED');
    t.regex(e.message, reason);
  }
  t.throws(() => spiffeIdFromCertificate(new Uint8Array([1, 2, 3])), { message: /cannot parse/ });
});

test('trust domain and expiry are not leaf-format rules: the bundle and TLS decide them', async (t) => {
  const ca = await createTestCa('mesh.test');
  t.is(
    spiffeIdFromCertificate((await badSvids.otherTrustDomain(ca, '/x')).der),
    'spiffe://other.mesh.test/x',
  );
  t.is(
    spiffeIdFromCertificate((await badSvids.expired(ca, 'spiffe://mesh.test/x')).der),
    'spiffe://mesh.test/x',
  );
});

test('parseSpiffeId accepts SPIFFE IDs and refuses near misses', (t) => {
  t.deepEqual(parseSpiffeId('spiffe://mesh.example/agent/host-1'), {
    id: 'spiffe://mesh.example/agent/host-1',
    trustDomain: 'mesh.example',
    path: '/agent/host-1',
  });
  for (const bad of [
    'spiffe://mesh.example',
    'spiffe://mesh.example/',
    'spiffe://Mesh.example/x',
    'spiffe://mesh.example:443/x',
    'spiffe://user@mesh.example/x',
    'spiffe://mesh.example/a//b',
    'spiffe://mesh.example/a/../b',
    'spiffe://mesh.example/a?b=c',
    'spiffe:///x',
    'SPIFFE://mesh.example/x',
    'https://mesh.example/x',
  ]) {
    t.throws(() => parseSpiffeId(bad), { instanceOf: AgentError }, bad);
  }
});
