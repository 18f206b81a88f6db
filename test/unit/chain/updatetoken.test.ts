import test from 'ava';
import { timestampToMs } from '../../../src/api/index.js';
import {
  CLIENT_TOKEN_EXPIRES_KEY,
  CLIENT_TOKEN_KEY,
  decodeToken,
  formatRfc3339Nano,
  verifyTokenSignature,
} from '../../../src/api/token/index.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import { outgoingMetadataOf, withIncomingMetadata } from '../../../src/chain/core/call-metadata.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { updateTokenClient, updateTokenServer } from '../../../src/chain/updatetoken/index.js';
import { updatePathClient, updatePathServer } from '../../../src/chain/updatepath/index.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { capturingLogger, requestWith, testContext } from '../../helpers/chain.js';
import { MGR_ID, NSC_ID, identities, metadataOf } from './token-fixture.js';

const tail: ChainElement = {
  name: 'endpoint',
  request: (_ctx, r) => Promise.resolve(r.connection!),
  close: () => Promise.resolve(),
};

type Ids = Awaited<ReturnType<typeof identities>>;

/** A call from the NSC as the nsmgr server sees it: its TLS peer and a fresh token for us in metadata. */
function fromNsc(ids: Ids, clock: FakeClock) {
  const callerToken = ids.nsc.signer(clock).mint({ spiffeId: MGR_ID });
  const ctx = withIncomingMetadata(
    testContext({ clock, peer: { spiffeId: NSC_ID, certificate: ids.nsc.cert } }),
    metadataOf({
      [CLIENT_TOKEN_KEY]: callerToken.token,
      [CLIENT_TOKEN_EXPIRES_KEY]: formatRfc3339Nano(callerToken.expiresAtMs),
    }),
  );
  return { ctx, callerToken };
}

test('server: the caller token from metadata goes into its segment, ours is minted for the caller', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    updateTokenServer({ signer: ids.mgr.signer(clock) }),
    tail,
  ]);
  const { ctx, callerToken } = fromNsc(ids, clock);
  const conn = await chain.request(ctx, requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1'));
  const [nsc, mgr] = conn.path!.pathSegments;
  t.is(nsc?.token, callerToken.token, 'the previous segment carries the metadata token');
  t.is(timestampToMs(nsc!.expires!), callerToken.expiresAtMs);
  const own = decodeToken(mgr!.token).claims;
  t.deepEqual({ sub: own.sub, aud: own.aud }, { sub: MGR_ID, aud: [NSC_ID] });
  t.true(verifyTokenSignature(mgr!.token, ids.mgr.cert), 'signed with the nsmgr SVID key');
  t.is(timestampToMs(mgr!.expires!), clock.now() + 10 * 60_000, 'NSM default lifetime 10 min');
  t.is(own.exp, Math.floor((clock.now() + 10 * 60_000) / 1000));
});

test('server: concurrent requests from one caller in the same second share our signed token, a later second gets a new one with the later exp', async (t) => {
  const ids = await identities();
  // 0.2 s into a second, so 0.5 s later exp is still the same whole second.
  const clock = new FakeClock(Math.floor(Date.now() / 1000) * 1000 + 200);
  const chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    updateTokenServer({ signer: ids.mgr.signer(clock) }),
    tail,
  ]);
  const call = async (id: string): Promise<string> => {
    const { ctx } = fromNsc(ids, clock);
    const conn = await chain.request(ctx, requestWith([{ name: 'nsc', id }], 0, id));
    const own = conn.path!.pathSegments[1]!;
    t.is(timestampToMs(own.expires!), clock.now() + 10 * 60_000, 'the segment expiry is exact per call');
    return own.token;
  };
  const [a, b] = await Promise.all([call('c1'), call('c2')]);
  await clock.advance(500);
  const c = await call('c3');
  t.is(b, a);
  t.is(c, a, 'same exp second: same claims, same token');
  await clock.advance(500);
  const d = await call('c4');
  t.not(d, a);
  t.is(decodeToken(d).claims.exp, (decodeToken(a).claims.exp ?? 0) + 1);
  t.deepEqual(decodeToken(d).claims.aud, [NSC_ID]);
  t.true(verifyTokenSignature(d, ids.mgr.cert));
});

test('server: without token metadata it warns and keeps what the caller put in its segment', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const { log, lines } = capturingLogger('warn');
  const chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    updateTokenServer({ signer: ids.mgr.signer(clock) }),
    tail,
  ]);
  const req = requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1');
  req.connection!.path!.pathSegments[0]!.token = 'kept-as-sent';
  const conn = await chain.request(
    withIncomingMetadata(testContext({ clock, log, peer: { spiffeId: NSC_ID } }), metadataOf({})),
    req,
  );
  t.is(conn.path!.pathSegments[0]!.token, 'kept-as-sent');
  t.is(conn.path!.pathSegments[0]!.expires, undefined);
  t.is(lines.length, 1);
  t.is(lines[0]?.reason, 'no nsm-client-token metadata');
  t.regex(String(lines[0]?.msg), /no usable nsm-client-token/);
  t.false(JSON.stringify(lines).includes('kept-as-sent'), 'no token in the log');
});

test('client: a token per call for the server (new each exp second), in our segment and in the outgoing metadata', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const sent: Record<string, string>[] = [];
  const connect: ChainElement = {
    name: 'connect',
    request(ctx, r) {
      sent.push(Object.fromEntries(outgoingMetadataOf(ctx)?.entries() ?? []));
      return Promise.resolve(r.connection!);
    },
    close: () => Promise.resolve(),
  };
  const chain = buildChain('nsc', [
    updatePathClient('nsc'),
    updateTokenClient({ signer: ids.nsc.signer(clock), server: { spiffeId: MGR_ID } }),
    connect,
  ]);
  const first = await chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  await clock.advance(5_000);
  const second = await chain.request(testContext({ clock }), requestWith([], 0, 'c1'));
  const again = await chain.request(testContext({ clock }), requestWith([], 0, 'c2'));
  t.is(sent.length, 3);
  t.is(
    again.path!.pathSegments[0]!.token,
    second.path!.pathSegments[0]!.token,
    'a call in the same exp second gets the same token (same claims): one signature per second',
  );
  const [m1, m2] = sent;
  t.is(m1?.[CLIENT_TOKEN_KEY], first.path!.pathSegments[0]!.token, 'metadata and segment agree');
  t.is(
    m1?.[CLIENT_TOKEN_EXPIRES_KEY],
    formatRfc3339Nano(timestampToMs(first.path!.pathSegments[0]!.expires!)),
  );
  t.not(m2?.[CLIENT_TOKEN_KEY], m1?.[CLIENT_TOKEN_KEY], 'a fresh token for the second call');
  t.is(
    timestampToMs(second.path!.pathSegments[0]!.expires!) -
      timestampToMs(first.path!.pathSegments[0]!.expires!),
    5_000,
  );
  const claims = decodeToken(m1?.[CLIENT_TOKEN_KEY] ?? '').claims;
  t.deepEqual({ sub: claims.sub, aud: claims.aud }, { sub: NSC_ID, aud: [MGR_ID] });
  t.true(verifyTokenSignature(m1?.[CLIENT_TOKEN_KEY] ?? '', ids.nsc.cert));
});
