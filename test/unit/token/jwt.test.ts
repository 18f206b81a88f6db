import { generateKeyPairSync, sign, verify, X509Certificate } from 'node:crypto';
import test from 'ava';
import {
  createTokenSigner,
  decodeToken,
  mintToken,
  verifyTokenSignature,
} from '../../../src/api/token/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';

const ME = 'spiffe://mesh.test/agent/host-1';
const PEER = 'spiffe://mesh.test/server';

function p256(): { privateKey: string; publicKey: string } {
  return generateKeyPairSync('ec', {
    namedCurve: 'P-256',
    publicKeyEncoding: { type: 'spki', format: 'pem' },
    privateKeyEncoding: { type: 'pkcs8', format: 'pem' },
  });
}

const b64 = (v: unknown): string => Buffer.from(JSON.stringify(v)).toString('base64url');

test('a minted token has golang-jwt’s header and claim layout and a raw r||s signature', (t) => {
  const { privateKey, publicKey } = p256();
  const token = mintToken({ privateKey, subject: ME, audience: PEER, expiresAtMs: 1_767_225_600_999 });
  const [h, p, s] = token.split('.') as [string, string, string];
  t.is(Buffer.from(h, 'base64url').toString(), '{"alg":"ES256","typ":"JWT"}');
  t.is(Buffer.from(p, 'base64url').toString(), `{"sub":"${ME}","aud":["${PEER}"],"exp":1767225600}`);
  const sig = Buffer.from(s, 'base64url');
  t.is(sig.length, 64);
  t.false(s.includes('='), 'no base64 padding');
  // Independent check: Node's verify in JOSE (IEEE P1363) encoding.
  t.true(verify('sha256', Buffer.from(`${h}.${p}`), { key: publicKey, dsaEncoding: 'ieee-p1363' }, sig));
  t.true(verifyTokenSignature(token, publicKey));
});

test('aud is left out without a peer, as upstream does when there is no TLS peer', (t) => {
  const { privateKey } = p256();
  const token = mintToken({ privateKey, subject: ME, expiresAtMs: 2_000_000_000_000 });
  t.deepEqual(decodeToken(token).claims.raw, { sub: ME, exp: 2_000_000_000 });
});

test('a token built independently (manual JSON + crypto.sign) decodes and verifies', (t) => {
  const { privateKey, publicKey } = p256();
  const input = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64({ sub: PEER, aud: [ME], exp: 1_900_000_000 })}`;
  const sig = sign('sha256', Buffer.from(input), { key: privateKey, dsaEncoding: 'ieee-p1363' });
  const token = `${input}.${sig.toString('base64url')}`;
  const decoded = decodeToken(token);
  t.is(decoded.claims.sub, PEER);
  t.deepEqual(decoded.claims.aud, [ME]);
  t.is(decoded.claims.exp, 1_900_000_000);
  t.true(verifyTokenSignature(token, publicKey));
  t.false(verifyTokenSignature(token, p256().publicKey), 'another key does not verify it');
});

test('DER-encoded (non-JOSE) signatures, other algs and tampered payloads do not verify', (t) => {
  const { privateKey, publicKey } = p256();
  const input = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64({ sub: PEER })}`;
  const der = sign('sha256', Buffer.from(input), privateKey);
  t.false(verifyTokenSignature(`${input}.${der.toString('base64url')}`, publicKey));
  const good = mintToken({ privateKey, subject: ME, expiresAtMs: 2_000_000_000_000 });
  const [h, , s] = good.split('.') as [string, string, string];
  t.false(
    verifyTokenSignature(
      `${h}.${b64({ sub: 'spiffe://mesh.test/evil', exp: 2_000_000_000 })}.${s}`,
      publicKey,
    ),
  );
  const [, p2, s2] = good.split('.') as [string, string, string];
  t.false(verifyTokenSignature(`${b64({ alg: 'none', typ: 'JWT' })}.${p2}.${s2}`, publicKey));
  t.false(verifyTokenSignature('not-a-jwt', publicKey));
});

test('decodeToken says what is wrong without echoing the token', (t) => {
  for (const [bad, why] of [
    ['a.b', '2 dot-separated parts'],
    ['a.b.c.d', '4 dot-separated parts'],
    [`${b64({ alg: 'ES256' })}.!!.x`, 'not base64url'],
    [`${b64({ alg: 'ES256' })}.${Buffer.from('nope').toString('base64url')}.x`, 'payload is not JSON'],
    [`${b64([1])}.${b64({})}.x`, 'header is not a JSON object'],
  ] as const) {
    const e = t.throws(() => decodeToken(bad), { instanceOf: AgentError });
    t.is(e.code, 'UNAUTHENTICATED');
    t.true(e.message.includes(why), e.message);
    t.false(e.message.includes(bad));
  }
});

test('mintToken refuses keys that cannot make ES256 signatures', (t) => {
  const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey;
  const p384 = generateKeyPairSync('ec', { namedCurve: 'P-384' }).privateKey;
  for (const privateKey of [rsa, p384]) {
    const e = t.throws(() => mintToken({ privateKey, subject: ME, expiresAtMs: 1 }), {
      instanceOf: AgentError,
    });
    t.is(e.code, 'CONFIG_INVALID');
  }
});

test('the signer caps expiry at max lifetime, own NotAfter and peer NotAfter, and verifies with the SVID certificate', async (t) => {
  const ca = await createTestCa('mesh.test');
  const now = Date.now();
  const svid = await issueSvid(ca, ME, { notAfter: new Date(now + 30 * 60_000) });
  const clock = new FakeClock(now);
  const signer = createTokenSigner({
    spiffeId: ME,
    certificatePem: svid.certPem,
    privateKeyPem: svid.keyPem,
    clock,
  });
  const a = signer.mint({ spiffeId: PEER });
  t.is(a.expiresAtMs, now + 10 * 60_000);
  t.deepEqual(decodeToken(a.token).claims.aud, [PEER]);
  t.true(verifyTokenSignature(a.token, new X509Certificate(svid.certPem)));
  t.true(verifyTokenSignature(a.token, svid.certPem));
  t.is(signer.mint({ spiffeId: PEER, notAfterMs: now + 60_000 }).expiresAtMs, now + 60_000);
  await clock.advance(25 * 60_000);
  const notAfter = Date.parse(new X509Certificate(svid.certPem).validTo);
  t.is(signer.mint().expiresAtMs, notAfter);
  t.deepEqual(decodeToken(signer.mint().token).claims.aud, []);
});

test('with reuse, the signer returns the same token only for the same audience and exp second', async (t) => {
  const ca = await createTestCa('mesh.test');
  const svid = await issueSvid(ca, ME);
  // 0.2 s into a second: 0.5 s later exp is still the same whole second.
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000 + 200);
  const signer = createTokenSigner({
    spiffeId: ME,
    certificatePem: svid.certPem,
    privateKeyPem: svid.keyPem,
    clock,
  });
  const reuse = { reuse: true };
  const first = signer.mint({ spiffeId: PEER }, reuse);
  t.not(signer.mint({ spiffeId: PEER }).token, first.token, 'without reuse every token is new');
  await clock.advance(500);
  const again = signer.mint({ spiffeId: PEER }, reuse);
  t.is(again.token, first.token);
  t.is(again.expiresAtMs, first.expiresAtMs + 500, 'expiresAtMs stays exact');
  const other = signer.mint({ spiffeId: 'spiffe://mesh.test/other' }, reuse);
  t.not(other.token, first.token);
  t.deepEqual(decodeToken(other.token).claims.aud, ['spiffe://mesh.test/other']);
  t.deepEqual(decodeToken(signer.mint(undefined, reuse).token).claims.aud, []);
  await clock.advance(500);
  const later = signer.mint({ spiffeId: PEER }, reuse);
  t.not(later.token, first.token);
  t.is(decodeToken(later.token).claims.exp, Math.floor(later.expiresAtMs / 1000));
  t.is(decodeToken(later.token).claims.exp, (decodeToken(first.token).claims.exp ?? 0) + 1);
  t.true(verifyTokenSignature(later.token, svid.certPem));
});

test('the signer refuses a key that does not belong to the certificate', async (t) => {
  const ca = await createTestCa('mesh.test');
  const a = await issueSvid(ca, ME);
  const b = await issueSvid(ca, PEER);
  const e = t.throws(
    () =>
      createTokenSigner({
        spiffeId: ME,
        certificatePem: a.certPem,
        privateKeyPem: b.keyPem,
        clock: new FakeClock(),
      }),
    { instanceOf: AgentError },
  );
  t.is(e.code, 'CONFIG_INVALID');
});

test('a remembered verification answers only for the same token and certificate: another key, a tampered copy and an expired token are checked in full', async (t) => {
  const ca = await createTestCa('mesh.test');
  const mine = await issueSvid(ca, ME);
  const theirs = await issueSvid(ca, PEER);
  const myCert = new X509Certificate(mine.certPem);
  const theirCert = new X509Certificate(theirs.certPem);
  const token = mintToken({
    privateKey: mine.keyPem,
    subject: ME,
    audience: PEER,
    expiresAtMs: Date.now() + 60_000,
  });
  t.true(verifyTokenSignature(token, myCert));
  t.true(verifyTokenSignature(token, myCert), 'again, with the same certificate');
  t.false(verifyTokenSignature(token, theirCert), 'not with another certificate after it verified with ours');
  t.false(verifyTokenSignature(token, theirs.certPem));
  const [h, p, s] = token.split('.') as [string, string, string];
  const flipped = `${s.slice(0, -2)}${s.endsWith('AA') ? 'BB' : 'AA'}`;
  t.false(
    verifyTokenSignature(`${h}.${p}.${flipped}`, myCert),
    'a changed signature is verified, not remembered',
  );
  const forged = `${b64({ alg: 'ES256', typ: 'JWT' })}.${b64({ sub: PEER, aud: [ME], exp: 4_102_444_800 })}.${s}`;
  t.false(verifyTokenSignature(forged, myCert), 'other claims under the remembered signature');
  // A token past its exp is not remembered, but verifying the signature alone still says yes:
  // expiry is the policies' check (tokens_expired), as before.
  const expired = mintToken({ privateKey: mine.keyPem, subject: ME, expiresAtMs: Date.now() - 1_000 });
  t.true(verifyTokenSignature(expired, myCert));
  t.false(verifyTokenSignature(expired, theirCert));
});
