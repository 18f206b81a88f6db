// NSE registry over real gRPC + mTLS on loopback: Register/Find/Unregister, query templates,
// expiration choice, refresh, watch (current, add, update, delete, expiry), several servers on one store.
import test from 'ava';
import { setTimeout as sleep } from 'node:timers/promises';
import { timestampToMs, toTimestamp } from '../../../src/api/index.js';
import type { NetworkServiceEndpointResponse } from '../../../src/api/index.js';
import { Metadata } from '@grpc/grpc-js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { OMIT_RENEWALS_METADATA_KEY } from '../../../src/registry/renewals.js';
import { systemClock } from '../../../src/host/index.js';
import { MemoryStore } from '../../../src/store/index.js';
import { AGENT_A, AGENT_B, RegistryClient, SERVER_ID, Watch, all, mesh, startRegistry } from './fixtures.js';

const MINUTE = 60_000;

async function setup(
  t: Parameters<typeof startRegistry>[0],
  options: { clock?: FakeClock; defaultExpirationMs?: number } = {},
): Promise<{ clock: FakeClock; a: RegistryClient; b: RegistryClient; store: MemoryStore; url: string }> {
  const m = await mesh();
  const clock = options.clock ?? new FakeClock(Date.now());
  const store = new MemoryStore({ clock });
  t.teardown(() => store.close());
  const { url } = await startRegistry(t, { clock, store, ...options });
  return {
    clock,
    store,
    url,
    a: new RegistryClient(t, url, m.a, m.ca, clock),
    b: new RegistryClient(t, url, m.b, m.ca, clock),
  };
}

const names = (rs: readonly NetworkServiceEndpointResponse[]): string[] =>
  rs.map((r) => `${r.deleted ? '-' : '+'}${r.networkServiceEndpoint?.name ?? '?'}`).sort();

test('register, find by name, unregister; the response carries the server-chosen times and path_ids', async (t) => {
  const { a, clock } = await setup(t);
  const { response } = await a.registerNse({
    name: 'nse-1',
    networkServiceNames: ['db-net'],
    url: 'tcp://10.0.0.1:5001',
  });
  t.is(response.name, 'nse-1');
  t.is(timestampToMs(response.expirationTime!), clock.now() + MINUTE, 'default expiration is 1 min');
  t.is(timestampToMs(response.initialRegistrationTime!), clock.now());
  t.deepEqual(response.pathIds, [AGENT_A, SERVER_ID]);

  const found = await all(a.nse.find({ networkServiceEndpoint: { name: 'nse-1' } }));
  t.is(found.length, 1);
  t.is(found[0]?.networkServiceEndpoint?.url, 'tcp://10.0.0.1:5001');
  t.false(found[0]?.deleted);

  await a.unregisterNse({ name: 'nse-1' });
  t.deepEqual(await all(a.nse.find({ networkServiceEndpoint: { name: 'nse-1' } })), []);
});

test('every NSE template rule: name exact, services subset, labels, url substring, expiration seconds', async (t) => {
  const { a } = await setup(t);
  await a.registerNse({
    name: 'db-1',
    networkServiceNames: ['db-net', 'backup'],
    networkServiceLabels: { 'db-net': { labels: { zone: 'eu', tier: 'gold' } } },
    url: 'tcp://10.0.0.1:5001',
  });
  await a.registerNse({
    name: 'db-2',
    networkServiceNames: ['db-net'],
    networkServiceLabels: { 'db-net': { labels: { zone: 'us' } } },
    url: 'tcp://10.0.0.2:5001',
  });
  const { response: web } = await a.registerNse({
    name: 'web-1',
    networkServiceNames: ['web'],
    url: 'unix:///run/web.sock',
  });
  const find = async (
    template: Parameters<typeof a.nse.find>[0]['networkServiceEndpoint'],
  ): Promise<string[]> => names(await all(a.nse.find({ networkServiceEndpoint: template })));

  t.deepEqual(await find(undefined), ['+db-1', '+db-2', '+web-1'], 'no template: everything');
  t.deepEqual(await find({}), ['+db-1', '+db-2', '+web-1'], 'empty template: everything');
  t.deepEqual(await find({ name: 'db-1' }), ['+db-1']);
  t.deepEqual(await find({ name: 'db' }), [], 'name is exact, not a prefix');
  t.deepEqual(await find({ networkServiceNames: ['db-net'] }), ['+db-1', '+db-2']);
  t.deepEqual(
    await find({ networkServiceNames: ['db-net', 'backup'] }),
    ['+db-1'],
    'subset of the NSE’s services',
  );
  t.deepEqual(await find({ networkServiceNames: ['db-net', 'web'] }), []);
  t.deepEqual(await find({ networkServiceLabels: { 'db-net': { labels: { zone: 'eu' } } } }), ['+db-1']);
  t.deepEqual(
    await find({ networkServiceLabels: { 'db-net': { labels: { zone: 'eu', tier: 'silver' } } } }),
    [],
  );
  t.deepEqual(
    await find({ networkServiceLabels: { 'db-net': { labels: {} } } }),
    ['+db-1', '+db-2'],
    'service key alone',
  );
  t.deepEqual(
    await find({ networkServiceLabels: { web: { labels: {} } } }),
    [],
    'web-1 has no labels entry for web',
  );
  t.deepEqual(await find({ url: '10.0.0.' }), ['+db-1', '+db-2'], 'url substring');
  t.deepEqual(await find({ url: 'unix://' }), ['+web-1']);
  t.deepEqual(
    await find({ networkServiceNames: ['db-net'], url: '10.0.0.2' }),
    ['+db-2'],
    'rules combine with AND',
  );
  t.deepEqual(
    await find({ expirationTime: web.expirationTime }),
    ['+db-1', '+db-2', '+web-1'],
    'same second',
  );
  t.deepEqual(await find({ expirationTime: toTimestamp(1_000) }), []);
});

test('expiration: a longer request is lowered to the default, a shorter one is kept', async (t) => {
  const { a, clock } = await setup(t, { defaultExpirationMs: 30_000 });
  const long = await a.registerNse({
    name: 'long',
    url: 'tcp://10.0.0.1:1',
    expirationTime: toTimestamp(clock.now() + 10 * MINUTE),
  });
  t.is(timestampToMs(long.response.expirationTime!), clock.now() + 30_000);
  const short = await a.registerNse({
    name: 'short',
    url: 'tcp://10.0.0.1:1',
    expirationTime: toTimestamp(clock.now() + 5_000),
  });
  t.is(timestampToMs(short.response.expirationTime!), clock.now() + 5_000);
});

test('a refresh keeps initial_registration_time and moves expiration_time on', async (t) => {
  const { a, clock } = await setup(t);
  const first = await a.registerNse({ name: 'nse-r', url: 'tcp://10.0.0.1:1' });
  await clock.advance(40_000);
  const again = await a.registerNse({ ...first.response, expirationTime: undefined }, { path: first.path! });
  t.deepEqual(again.response.initialRegistrationTime, first.response.initialRegistrationTime);
  t.is(timestampToMs(again.response.expirationTime!), clock.now() + MINUTE);
  // The first lease ran out meanwhile; the refreshed record must survive it.
  await clock.advance(30_000);
  t.is((await all(a.nse.find({ networkServiceEndpoint: { name: 'nse-r' } }))).length, 1);
});

test('watch: current matches first, then add, update and delete, filtered by the template', async (t) => {
  const { a } = await setup(t);
  await a.registerNse({ name: 'db-1', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.1:1' });
  await a.registerNse({ name: 'web-1', networkServiceNames: ['web'], url: 'tcp://10.0.0.3:1' });
  const w = new Watch(
    a.nse.find({ networkServiceEndpoint: { networkServiceNames: ['db-net'] }, watch: true }),
  );
  t.teardown(() => w.cancel());
  t.deepEqual(names(await w.take(1)), ['+db-1'], 'current state first');

  await a.registerNse({ name: 'db-2', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.2:1' });
  await a.registerNse({ name: 'web-2', networkServiceNames: ['web'], url: 'tcp://10.0.0.4:1' });
  const [added] = await w.take(1);
  t.is(added?.networkServiceEndpoint?.name, 'db-2');
  t.false(added?.deleted);

  await a.registerNse({ name: 'db-1', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.9:1' });
  const [updated] = await w.take(1);
  t.is(updated?.networkServiceEndpoint?.url, 'tcp://10.0.0.9:1');

  await a.unregisterNse({ name: 'db-2' });
  const [deleted] = await w.take(1);
  t.is(deleted?.networkServiceEndpoint?.name, 'db-2');
  t.true(deleted?.deleted);
  t.deepEqual(
    deleted?.networkServiceEndpoint?.networkServiceNames,
    ['db-net'],
    'the deleted record is the full last value',
  );
  t.true(await w.quiet(100), 'web-* never reached this watcher');
});

test('watch sees an NSE expire (deleted=true) when its lease runs out on the fake clock', async (t) => {
  const { a, clock } = await setup(t);
  await a.registerNse({ name: 'ephemeral', url: 'tcp://10.0.0.1:1' });
  const w = new Watch(a.nse.find({ networkServiceEndpoint: { name: 'ephemeral' }, watch: true }));
  t.teardown(() => w.cancel());
  t.deepEqual(names(await w.take(1)), ['+ephemeral']);
  await clock.advance(MINUTE - 1);
  t.true(await w.quiet(50), 'still alive 1 ms before expiry');
  await clock.advance(1);
  t.deepEqual(names(await w.take(1)), ['-ephemeral']);
  t.deepEqual(await all(a.nse.find({ networkServiceEndpoint: { name: 'ephemeral' } })), []);
});

test('a watcher that asks to omit renewals hears registrations, changes and expiries but not refreshes', async (t) => {
  const { a, clock } = await setup(t);
  const first = await a.registerNse({ name: 'nse-r', networkServiceNames: ['db'], url: 'tcp://10.0.0.1:1' });
  const omit = new Metadata();
  omit.set(OMIT_RENEWALS_METADATA_KEY, '1');
  const quietWatch = new Watch(a.nse.find({ networkServiceEndpoint: {}, watch: true }, { metadata: omit }));
  const fullWatch = new Watch(a.nse.find({ networkServiceEndpoint: {}, watch: true }));
  t.teardown(() => quietWatch.cancel());
  t.teardown(() => fullWatch.cancel());
  t.deepEqual(names(await quietWatch.take(1)), ['+nse-r'], 'current state first');
  t.deepEqual(names(await fullWatch.take(1)), ['+nse-r']);

  // Two refreshes (same record, later expiry): NSM's watchers hear each; ours hears nothing.
  for (let i = 0; i < 2; i++) {
    await clock.advance(40_000);
    await a.registerNse({ ...first.response, expirationTime: undefined }, { path: first.path! });
  }
  t.deepEqual(
    names(await fullWatch.take(2)),
    ['+nse-r', '+nse-r'],
    'a watcher without the key hears renewals',
  );
  t.true(await quietWatch.quiet(100), 'no renewal reached the watcher that asked to omit them');

  // A real change (another URL) and a new endpoint do reach it.
  await a.registerNse(
    { ...first.response, url: 'tcp://10.0.0.9:1', expirationTime: undefined },
    { path: first.path! },
  );
  const [changed] = await quietWatch.take(1);
  t.is(changed?.networkServiceEndpoint?.url, 'tcp://10.0.0.9:1');
  await a.registerNse({ name: 'nse-new', url: 'tcp://10.0.0.2:1' });
  t.deepEqual(names(await quietWatch.take(1)), ['+nse-new']);

  // So does the expiry of a registration nobody refreshes: the proxy relies on it.
  await clock.advance(MINUTE);
  t.deepEqual(names(await quietWatch.take(2)), ['-nse-new', '-nse-r']);
});

test('with the real clock and a 500 ms default expiration, an unrefreshed NSE is gone within a bounded wait', async (t) => {
  const m = await mesh();
  const store = new MemoryStore({ clock: systemClock });
  t.teardown(() => store.close());
  const { url } = await startRegistry(t, { clock: systemClock, store, defaultExpirationMs: 500 });
  const a = new RegistryClient(t, url, m.a, m.ca, systemClock);
  const w = new Watch(a.nse.find({ networkServiceEndpoint: { name: 'brief' }, watch: true }));
  t.teardown(() => w.cancel());
  const started = Date.now();
  await a.registerNse({ name: 'brief', url: 'tcp://10.0.0.1:1' });
  t.deepEqual(names(await w.take(2, 2_000)), ['+brief', '-brief']);
  const took = Date.now() - started;
  t.true(took >= 450 && took < 2_000, `expired after ${took} ms`);
});

test('two servers on one store: a registration on one is found and watched on the other, expiry reaches both', async (t) => {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const store = new MemoryStore({ clock });
  t.teardown(() => store.close());
  const one = await startRegistry(t, { clock, store });
  const two = await startRegistry(t, { clock, store });
  const a1 = new RegistryClient(t, one.url, m.a, m.ca, clock);
  const b2 = new RegistryClient(t, two.url, m.b, m.ca, clock);
  const w = new Watch(b2.nse.find({ watch: true }));
  t.teardown(() => w.cancel());
  t.true(await w.quiet(50));
  await a1.registerNse({ name: 'shared', url: 'tcp://10.0.0.1:1' });
  t.deepEqual(names(await w.take(1)), ['+shared']);
  t.is((await all(b2.nse.find({ networkServiceEndpoint: { name: 'shared' } }))).length, 1);
  const denied = await t.throwsAsync(b2.registerNse({ name: 'shared', url: 'tcp://10.0.0.2:1' }));
  t.regex(
    denied.message,
    /owned by spiffe:\/\/mesh.test\/agent\/host-a/,
    'ownership is shared through the store',
  );
  await clock.advance(MINUTE);
  t.deepEqual(names(await w.take(1)), ['-shared']);
  t.pass(AGENT_B);
});

test('a plain Find ends with the current matches; a cancelled watch ends cleanly and the server keeps serving', async (t) => {
  const { a } = await setup(t);
  for (let i = 0; i < 5; i++) await a.registerNse({ name: `n-${i}`, url: `tcp://10.0.0.${i + 1}:1` });
  t.is((await all(a.nse.find({}))).length, 5);
  for (let i = 0; i < 3; i++) {
    const w = new Watch(a.nse.find({ watch: true }));
    await w.take(5);
    w.cancel();
  }
  await sleep(20);
  t.is((await all(a.nse.find({ networkServiceEndpoint: { name: 'n-3' } }))).length, 1);
});

test('a refresh revokes the lease the record had before, so leases do not pile up in the store', async (t) => {
  const { a, store } = await setup(t);
  const first = await a.registerNse({ name: 'lease-r', url: 'tcp://10.0.0.1:1' });
  const key = '/nsm-agent/registry/nse/lease-r';
  const before = (await store.get(key))?.lease ?? 0;
  t.not(before, 0);
  await a.registerNse({ ...first.response, expirationTime: undefined }, { path: first.path! });
  const after = (await store.get(key))?.lease ?? 0;
  t.not(after, before);
  await new Promise((r) => setTimeout(r, 20));
  const e = await t.throwsAsync(store.keepAlive(before));
  t.regex(e.message, /lease/i, 'the old lease is gone');
  await store.keepAlive(after);
});
