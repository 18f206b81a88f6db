// The agent's registry proxy over real gRPC: local callers on a unix socket, the upstream registry
// (createRegistryServices) on real mTLS tcp, stopped and restarted with an empty store.
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { NetworkServiceEndpointSchema, create, timestampToMs } from '../../../../src/api/index.js';
import type { NetworkServiceEndpointResponse } from '../../../../src/api/index.js';
import { FakeClock, SequenceRandom } from '../../../../src/host/fake/index.js';
import { clientCredentials } from '../../../../src/api/grpc/index.js';
import { createTokenSigner } from '../../../../src/api/token/index.js';
import { systemClock } from '../../../../src/host/index.js';
import { issueSvid } from '../../../helpers/pki.js';
import { AGENT_A, RegistryClient, SERVER_ID, Watch, all, mesh } from '../fixtures.js';
import { FreezableRelay, Upstream, eventually, startProxy } from './proxy-fixtures.js';

const LOCAL_URL = 'unix:///run/nse-db/nse.sock';

async function upstreamClient(
  t: ExecutionContext,
  url: string,
  who: 'a' | 'b' = 'b',
): Promise<RegistryClient> {
  const m = await mesh();
  return new RegistryClient(t, url, who === 'a' ? m.a : m.b, m.ca, systemClock);
}

async function upstreamUrlOf(client: RegistryClient, name: string): Promise<string | undefined> {
  const found = await all(client.nse.find({ networkServiceEndpoint: { name } }));
  return found[0]?.networkServiceEndpoint?.url;
}

const urls = (rs: readonly NetworkServiceEndpointResponse[]): string[] =>
  rs
    .map(
      (r) =>
        `${r.deleted ? '-' : '+'}${r.networkServiceEndpoint?.name ?? '?'}@${r.networkServiceEndpoint?.url ?? '?'}`,
    )
    .sort();

test('a local endpoint registers through the proxy: upstream has the agent URL, local Find the local URL', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: upstream.url,
    random: new SequenceRandom(),
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');

  const { response, upstream: status } = await local.registerNse({
    name: 'db-1',
    networkServiceNames: ['db'],
    url: LOCAL_URL,
  });
  t.is(status, 'registered');
  t.is(response.url, publicUrl);
  t.deepEqual(response.pathIds, [AGENT_A, SERVER_ID], 'upstream saw the agent as the registrant');
  t.is(proxy.localUrl('db-1'), LOCAL_URL);

  const b = await upstreamClient(t, upstream.url);
  t.is(await upstreamUrlOf(b, 'db-1'), publicUrl);
  // The watch brings it into the cache; local Find gives the nsmgr the local URL back.
  await eventually(() => proxy.metrics().cachedEndpoints === 1, 3_000, 'cached');
  t.deepEqual(urls(await all(local.nse.find({ networkServiceEndpoint: { networkServiceNames: ['db'] } }))), [
    `+db-1@${LOCAL_URL}`,
  ]);
  // Something else claiming the agent's URL that the agent does not know is hidden (localbypass).
  const a2 = await upstreamClient(t, upstream.url, 'a');
  await a2.registerNse({ name: 'stale', networkServiceNames: ['db'], url: publicUrl });
  await b.registerNse({ name: 'remote', networkServiceNames: ['db'], url: 'tcp://192.0.2.20:5002' });
  await eventually(() => proxy.metrics().cachedEndpoints === 3, 3_000, 'cached 3');
  t.deepEqual(urls(await all(local.nse.find({ networkServiceEndpoint: {} }))), [
    `+db-1@${LOCAL_URL}`,
    '+remote@tcp://192.0.2.20:5002',
  ]);
  t.like(proxy.metrics(), { registrations: 1, localEndpoints: 1, pendingUpstream: 0, upstreamState: 'up' });
});

test('the proxy refreshes upstream at 2/3 of the expiration upstream returned', async (t) => {
  const upstream = new Upstream(t, { defaultExpirationMs: 1_500 });
  await upstream.start();
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: upstream.url,
    random: new SequenceRandom(),
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  const b = await upstreamClient(t, upstream.url);

  await local.registerNse({ name: 'kept', networkServiceNames: ['db'], url: LOCAL_URL });
  // A registration nobody refreshes, for comparison: it must be gone when ours is still there.
  await b.registerNse({ name: 'unrefreshed', networkServiceNames: ['db'], url: 'tcp://192.0.2.20:5002' });
  await sleep(3_300);
  t.is(await upstreamUrlOf(b, 'unrefreshed'), undefined, 'a 1.5 s registration expires upstream');
  t.is(await upstreamUrlOf(b, 'kept'), publicUrl, 'ours outlived two expirations');
  const { refreshes } = proxy.metrics();
  // 2/3 of 1.5 s = 1 s: three refreshes in 3.3 s (two at least, on a busy machine).
  t.true(refreshes >= 2 && refreshes <= 4, `refreshes: ${refreshes}`);
});

test('upstream sends the proxy no renewals: a refreshed endpoint stays listed with a live expiry, an unrefreshed one leaves with its expiry, and after upstream is lost one period', async (t) => {
  const upstream = new Upstream(t, { defaultExpirationMs: 1_500 });
  await upstream.start();
  const { proxy, local } = await startProxy(t, { upstreamUrl: upstream.url, random: new SequenceRandom() });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  const b = await upstreamClient(t, upstream.url);
  const local2 = new Watch(local.nse.find({ networkServiceEndpoint: { name: 'remote' }, watch: true }));
  t.teardown(() => local2.cancel());

  // b registers and refreshes every 0.5 s for 3 s: two expirations' worth.
  const first = await b.registerNse({
    name: 'remote',
    networkServiceNames: ['db'],
    url: 'tcp://192.0.2.20:5002',
  });
  const firstExpiry = timestampToMs(first.response.expirationTime!);
  const refreshing = (async () => {
    for (let i = 0; i < 6; i++) {
      await sleep(500);
      await b.registerNse({ ...first.response, expirationTime: undefined }, { path: first.path! });
    }
  })();
  await refreshing;
  t.true(Date.now() > firstExpiry + 1_000, "past the first registration's expiry");
  const [listed] = proxy.findEndpoints(create(NetworkServiceEndpointSchema, { name: 'remote' }));
  t.truthy(listed, 'still listed');
  t.true(
    timestampToMs(listed!.expirationTime!) > Date.now(),
    'with an expiration_time ahead of now (discover skips expired ones)',
  );
  const heard = urls(await local2.take(1));
  t.deepEqual(heard, ['+remote@tcp://192.0.2.20:5002']);
  t.true(
    await local2.quiet(200),
    'the six refreshes did not reach the proxy (and so not its local watchers)',
  );

  // Nobody refreshes: upstream deletes it when the registration runs out, and the proxy follows.
  await eventually(
    () => proxy.findEndpoints(undefined).every((e) => e.name !== 'remote'),
    4_000,
    'gone after its expiry',
  );
  t.deepEqual(urls(await local2.take(1)), ['-remote@tcp://192.0.2.20:5002']);

  // Upstream lost: an endpoint heard of is listed for one registration period from then, then not.
  await b.registerNse({ name: 'again', networkServiceNames: ['db'], url: 'tcp://192.0.2.21:5002' });
  await eventually(() => proxy.findEndpoints(undefined).some((e) => e.name === 'again'), 3_000, 'cached');
  await sleep(1_000);
  await upstream.stop();
  await eventually(() => proxy.state.kind !== 'up', 5_000, 'proxy saw upstream go');
  const lostAt = Date.now();
  t.true(
    proxy.findEndpoints(undefined).some((e) => e.name === 'again'),
    'listed right after upstream went',
  );
  const took = await eventually(
    () => proxy.findEndpoints(undefined).every((e) => e.name !== 'again'),
    5_000,
    'left out',
  );
  t.true(
    Date.now() - lostAt >= 1_000,
    `listed about one period (1.5 s) after upstream went, left out after ${took} ms`,
  );
});

test('with upstream stopped local Find answers from the cache; upstream back EMPTY gets everything again', async (t) => {
  const upstream = new Upstream(t, { defaultExpirationMs: 10_000 });
  await upstream.start();
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: upstream.url,
    random: new SequenceRandom('r', [0.5]),
    backoff: { initialMs: 100, maxMs: 400 },
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  await local.registerNs({ name: 'db', payload: 'IP' });
  await local.registerNse({ name: 'db-1', networkServiceNames: ['db'], url: LOCAL_URL });
  const b = await upstreamClient(t, upstream.url);
  await b.registerNse({ name: 'remote', networkServiceNames: ['db'], url: 'tcp://192.0.2.20:5002' });
  await eventually(() => proxy.metrics().cachedEndpoints === 2, 3_000, 'cached');

  await upstream.stop();
  await eventually(() => proxy.metrics().upstreamLosses === 1, 3_000, 'proxy sees upstream gone');
  t.not(proxy.state.kind, 'up');
  t.deepEqual(urls(await all(local.nse.find({ networkServiceEndpoint: {} }))), [
    `+db-1@${LOCAL_URL}`,
    '+remote@tcp://192.0.2.20:5002',
  ]);
  t.deepEqual(
    (await all(local.ns.find({ networkService: { name: 'db' } }))).map((r) => r.networkService?.name),
    ['db'],
  );
  await sleep(500); // a few failed reconnects

  await upstream.start(); // same port, empty store
  const fresh = await upstreamClient(t, upstream.url);
  const took = await eventually(
    async () => (await upstreamUrlOf(fresh, 'db-1')) === publicUrl,
    5_000,
    'restored',
  );
  // Restored right after reconnecting: within the backoff ceiling (400 ms) plus connecting, far
  // below the 10 s refresh period.
  t.true(took < 3_000, `restored after ${took} ms`);
  const ns = await all(fresh.ns.find({ networkService: { name: 'db' } }));
  t.is(ns.length, 1, 'the network service is back too');
  // The cache now mirrors the fresh store: the remote endpoint that was not re-registered is gone.
  await eventually(
    async () =>
      urls(await all(local.nse.find({ networkServiceEndpoint: {} }))).join() === `+db-1@${LOCAL_URL}`,
    3_000,
    'cache resynced',
  );
  t.like(proxy.metrics(), { upstreamLosses: 1, upstreamConnects: 2, pendingUpstream: 0 });
  t.true(proxy.metrics().restored >= 2);
});

test('Register while upstream is down is queued (and says so), then reaches upstream when it starts', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const url = upstream.url;
  await upstream.stop(); // keep the port, nothing listens
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: url,
    random: new SequenceRandom(),
    localExpirationMs: 30_000,
  });
  t.not(proxy.state.kind, 'up');

  const before = Date.now();
  const { response, upstream: status } = await local.registerNse({ name: 'early', url: LOCAL_URL });
  t.is(status, 'queued', 'the answer does not claim upstream has it');
  const exp = timestampToMs(response.expirationTime!);
  t.true(exp >= before + 29_000 && exp <= Date.now() + 30_000, 'expiration is the local lease');
  t.like(proxy.metrics(), { queued: 1, pendingUpstream: 1 });
  // Local clients can use it already.
  t.deepEqual(urls(await all(local.nse.find({ networkServiceEndpoint: { name: 'early' } }))), [
    `+early@${LOCAL_URL}`,
  ]);

  await upstream.start();
  const b = await upstreamClient(t, upstream.url);
  await eventually(async () => (await upstreamUrlOf(b, 'early')) === publicUrl, 5_000, 'sent upstream');
  await eventually(() => proxy.metrics().pendingUpstream === 0, 3_000, 'nothing pending');
});

test('an upstream refusal reaches the local caller and nothing is kept', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const { proxy, local } = await startProxy(t, { upstreamUrl: upstream.url, random: new SequenceRandom() });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  const b = await upstreamClient(t, upstream.url);
  await b.registerNse({ name: 'taken', url: 'tcp://192.0.2.20:5002' });

  const err = await t.throwsAsync(local.registerNse({ name: 'taken', url: LOCAL_URL }));
  t.is((err as { code?: number }).code, 7, 'PERMISSION_DENIED: another agent owns the name');
  t.is(proxy.localUrl('taken'), undefined);
  t.like(proxy.metrics(), { localEndpoints: 0, queued: 0, registrations: 0 });
});

test('a local watch gets the current matches, then changes; Unregister is forwarded', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const { proxy, local } = await startProxy(t, { upstreamUrl: upstream.url, random: new SequenceRandom() });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  const b = await upstreamClient(t, upstream.url);
  await b.registerNse({ name: 'r1', networkServiceNames: ['db'], url: 'tcp://192.0.2.20:5002' });
  await eventually(() => proxy.metrics().cachedEndpoints === 1, 3_000, 'cached');

  const watch = new Watch(
    local.nse.find({ networkServiceEndpoint: { networkServiceNames: ['db'] }, watch: true }),
  );
  t.teardown(() => watch.cancel());
  t.deepEqual(urls(await watch.take(1)), ['+r1@tcp://192.0.2.20:5002']);
  await local.registerNse({ name: 'mine', networkServiceNames: ['db'], url: LOCAL_URL });
  t.deepEqual(urls(await watch.take(1)), [`+mine@${LOCAL_URL}`]);
  await b.registerNse({ name: 'other', networkServiceNames: ['web'], url: 'tcp://192.0.2.20:5002' });
  await local.unregisterNse({ name: 'mine' });
  const [gone] = await watch.take(1);
  t.true(gone?.deleted);
  t.is(gone?.networkServiceEndpoint?.name, 'mine');
  t.true(await watch.quiet(200), 'the web endpoint does not match the watch');
  t.is(await upstreamUrlOf(b, 'mine'), undefined);
});

test('a local endpoint that stops refreshing is removed upstream when its local lease ends', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: upstream.url,
    random: new SequenceRandom(),
    localExpirationMs: 1_000,
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  const b = await upstreamClient(t, upstream.url);
  await local.registerNse({ name: 'crashy', url: LOCAL_URL });
  t.is(await upstreamUrlOf(b, 'crashy'), publicUrl);
  await eventually(async () => (await upstreamUrlOf(b, 'crashy')) === undefined, 3_000, 'removed upstream');
  t.like(proxy.metrics(), { localExpired: 1, localEndpoints: 0 });
});

test('proxies that lost upstream together reconnect at their own jittered times, not at once', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const clock = new FakeClock(Date.now());
  const backoff = { initialMs: 1_000, maxMs: 30_000 };
  const agents = await Promise.all(
    [0.1, 0.5, 0.9].map((f) =>
      startProxy(t, { upstreamUrl: upstream.url, clock, random: new SequenceRandom('r', [f]), backoff }),
    ),
  );
  const kinds = (): string => agents.map((a) => a.proxy.state.kind).join();
  await eventually(() => kinds() === 'up,up,up', 5_000, 'all up');
  await upstream.stop();
  await eventually(() => kinds() === 'down,down,down', 5_000, 'all down');
  t.deepEqual(
    agents.map((a) => (a.proxy.state.kind === 'down' ? a.proxy.state.retryInMs : -1)),
    [100, 500, 900],
  );
  await upstream.start();
  await clock.advance(150);
  await eventually(() => kinds() === 'up,down,down', 5_000, 'first agent back alone');
  await clock.advance(400);
  await eventually(() => kinds() === 'up,up,down', 5_000, 'second agent back');
  t.is(agents[2]?.proxy.state.kind, 'down', 'the third still waits for its own time');
  await clock.advance(400);
  await eventually(() => kinds() === 'up,up,up', 5_000, 'third agent back');
});

test('upstream back: the session starts when the channel reconnects, not at the end of a proxy sleep (R19)', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  // The proxy's timers only run when the test moves this clock; the channel reconnects in real time.
  const clock = new FakeClock(Date.now());
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: upstream.url,
    clock,
    random: new SequenceRandom('r', [0.5]),
    backoff: { initialMs: 1_000, maxMs: 10_000 },
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  await local.registerNse({ name: 'db-1', url: LOCAL_URL });
  await upstream.stop();
  await eventually(() => proxy.state.kind === 'down', 3_000, 'proxy sees upstream gone');
  await clock.advance(proxy.state.kind === 'down' ? proxy.state.retryInMs : 0);
  // Longer than the 2 s call timeout: a waitForReady window would have ended and the proxy would
  // sleep (here: until the clock moves, i.e. never) before looking again.
  await sleep(3_000);
  t.is(proxy.state.kind, 'down', 'still down, with the reason, while upstream is away');
  await upstream.start(); // empty store
  const fresh = await upstreamClient(t, upstream.url);
  const took = await eventually(
    async () => (await upstreamUrlOf(fresh, 'db-1')) === publicUrl,
    5_000,
    'restored without the proxy clock moving',
  );
  // grpc-js's reconnect backoff here is 50-200 ms; then the watches, the listing and one Register.
  t.true(took < 1_500, `restored ${took} ms after upstream listened`);
  t.is(proxy.state.kind, 'up');
});

test('proxies whose channels reconnect together start their sessions spread over reconnectSpreadMs (R24)', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const fractions = [0.05, 0.35, 0.65, 0.95];
  const agents = await Promise.all(
    fractions.map((f) =>
      startProxy(t, {
        upstreamUrl: upstream.url,
        random: new SequenceRandom('r', [f]),
        reconnectSpreadMs: 2_000,
      }),
    ),
  );
  await eventually(() => agents.every((a) => a.proxy.state.kind === 'up'), 5_000, 'all up');
  await upstream.stop();
  await eventually(() => agents.every((a) => a.proxy.state.kind === 'down'), 5_000, 'all down');
  await sleep(1_200); // past every post-loss sleep (f x 1 s): all wait for their channel now
  await upstream.start();
  const back = Date.now();
  const upAfter: (number | undefined)[] = agents.map(() => undefined);
  await eventually(
    () => {
      agents.forEach((a, i) => {
        if (upAfter[i] === undefined && a.proxy.state.kind === 'up') upAfter[i] = Date.now() - back;
      });
      return upAfter.every((u) => u !== undefined);
    },
    8_000,
    'all up again',
  );
  const ms = upAfter.map((u) => u ?? NaN);
  t.log(`sessions up ${ms.join(', ')} ms after upstream listened`);
  // Channels back within grpc-js's 50-200 ms here; the sessions follow at f x 2 s.
  fractions.forEach((f, i) =>
    t.true((ms[i] ?? 0) >= f * 2_000 - 50, `agent ${i}: ${ms[i]} ms, spread ${f * 2_000} ms`),
  );
  t.true(Math.max(...ms) - Math.min(...ms) >= 1_500, 'not at one instant');
});

test('a refresh that falls due takes along the others due within 5 s, all sent together', async (t) => {
  const upstream = new Upstream(t, { defaultExpirationMs: 30_000 });
  await upstream.start();
  const clock = new FakeClock(Date.now());
  const { proxy, local } = await startProxy(t, {
    upstreamUrl: upstream.url,
    clock,
    random: new SequenceRandom('r', [0.5]),
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  await clock.advance(Math.max(0, Date.now() - clock.now())); // the proxy's clock catches up with real time
  const t0 = clock.now();
  // Upstream answers "expires at (real) now + 30 s"; the proxy refreshes at 2/3 of what is left by
  // its clock: registered at t0 + x (by the proxy's clock) when real time is t0 + r, the refresh is
  // due at t0 + 20 s + x/3 + 2r/3.
  const at = async (x: number, name: string): Promise<void> => {
    await clock.advance(t0 + x - clock.now());
    await local.registerNse({ name, url: LOCAL_URL });
  };
  await at(0, 'a'); // due ~20 s
  await at(3_000, 'b'); // due ~21 s
  await at(10_000, 'c'); // due ~23.3 s
  await at(18_000, 'd'); // due ~26 s: more than 5 s after a's
  t.is(proxy.metrics().refreshes, 0);
  const lag = ((Date.now() - t0) * 2) / 3;
  t.true(lag < 900, `the set-up took ${lag} ms too long for the times above`);
  // Past a's time, before b's own: b and c go with a, d does not.
  await clock.advance(t0 + 20_000 + lag + 50 - clock.now());
  await eventually(() => proxy.metrics().refreshes === 3, 3_000, 'a, b and c refreshed together');
  await sleep(200);
  t.is(proxy.metrics().refreshes, 3, 'd waits for its own time');
  await clock.advance(t0 + 26_000 + lag + 50 - clock.now());
  await eventually(() => proxy.metrics().refreshes >= 4, 3_000, 'd refreshed');
  t.is(proxy.metrics().refreshFailures, 0);
});

test('half-open TCP: keepalive ends the silent connection and the watch re-subscribes (R26)', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const relay = new FreezableRelay(t, () => upstream.port);
  const relayUrl = await relay.listen();
  const { proxy, local } = await startProxy(t, {
    upstreamUrl: relayUrl,
    random: new SequenceRandom(),
    tuning: { keepaliveTimeMs: 300, keepaliveTimeoutMs: 300 },
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  t.true(relay.freeze() >= 1);
  const b = await upstreamClient(t, upstream.url);
  await b.registerNse({ name: 'after-freeze', url: 'tcp://192.0.2.20:5002' });
  // Without keepalive the frozen watch would never hear of it; with it, the connection is dropped
  // within ~0.6 s, a new one is made, and the re-subscribed watch lists it.
  await eventually(
    async () =>
      (await all(local.nse.find({ networkServiceEndpoint: { name: 'after-freeze' } }))).length === 1,
    5_000,
    'seen after re-subscribe',
  );
  await eventually(() => proxy.metrics().upstreamConnects === 2, 3_000, 'session up again');
  t.is(proxy.metrics().upstreamLosses, 1);
});

test('a renewed SVID: the proxy reconnects with it and registrations stay upstream', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const { proxy, local, publicUrl } = await startProxy(t, {
    upstreamUrl: upstream.url,
    random: new SequenceRandom(),
  });
  await eventually(() => proxy.state.kind === 'up', 5_000, 'proxy up');
  await local.registerNse({ name: 'steady', url: LOCAL_URL });
  const m = await mesh();
  const renewed = await issueSvid(m.ca, AGENT_A);
  proxy.updateIdentity({
    credentials: clientCredentials({
      bundlePem: m.ca.certPem,
      certChainPem: renewed.chainPem,
      keyPem: renewed.keyPem,
      expectedServerId: SERVER_ID,
    }),
    signer: createTokenSigner({
      spiffeId: AGENT_A,
      certificatePem: renewed.certPem,
      privateKeyPem: renewed.keyPem,
      clock: systemClock,
    }),
  });
  await eventually(() => proxy.metrics().upstreamConnects === 2, 5_000, 'reconnected');
  const b = await upstreamClient(t, upstream.url);
  t.is(await upstreamUrlOf(b, 'steady'), publicUrl);
  // Calls now carry tokens from the new key: a second registration is accepted upstream.
  const { upstream: status } = await local.registerNse({ name: 'after-renewal', url: LOCAL_URL });
  t.is(status, 'registered');
});
