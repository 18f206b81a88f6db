// NS registry over real gRPC + mTLS: payload default, template matching, watch, no expiry.
import test from 'ava';
import type { NetworkServiceResponse } from '../../../src/api/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { AGENT_A, RegistryClient, SERVER_ID, Watch, all, mesh, startRegistry } from './fixtures.js';

async function setup(
  t: Parameters<typeof startRegistry>[0],
): Promise<{ a: RegistryClient; clock: FakeClock }> {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { url } = await startRegistry(t, { clock });
  return { a: new RegistryClient(t, url, m.a, m.ca, clock), clock };
}

const names = (rs: readonly NetworkServiceResponse[]): string[] =>
  rs.map((r) => `${r.deleted ? '-' : '+'}${r.networkService?.name ?? '?'}`).sort();

const GOLD = { sourceSelector: { tier: 'gold' }, routes: [{ destinationSelector: { zone: 'eu' } }] };
const ANY = { fallthrough: true, routes: [{ destinationSelector: {} }] };

test('payload defaults to IP, ETHERNET is kept; path_ids are set; NSs never expire', async (t) => {
  const { a, clock } = await setup(t);
  const { response } = await a.registerNs({ name: 'db-net' });
  t.is(response.payload, 'IP');
  t.deepEqual(response.pathIds, [AGENT_A, SERVER_ID]);
  t.is((await a.registerNs({ name: 'l2-net', payload: 'ETHERNET' })).response.payload, 'ETHERNET');
  await clock.advance(24 * 3_600_000);
  t.deepEqual(names(await all(a.ns.find({}))), ['+db-net', '+l2-net']);
});

test('NS template: name exact, payload exact, matches deep-equal in order', async (t) => {
  const { a } = await setup(t);
  await a.registerNs({ name: 'db-net', matches: [GOLD, ANY] });
  await a.registerNs({ name: 'web', matches: [ANY] });
  await a.registerNs({ name: 'l2', payload: 'ETHERNET' });
  const find = async (template: Parameters<typeof a.ns.find>[0]['networkService']): Promise<string[]> =>
    names(await all(a.ns.find({ networkService: template })));
  t.deepEqual(await find({}), ['+db-net', '+l2', '+web']);
  t.deepEqual(await find({ name: 'web' }), ['+web']);
  t.deepEqual(await find({ payload: 'IP' }), ['+db-net', '+web']);
  t.deepEqual(await find({ payload: 'ETHERNET' }), ['+l2']);
  t.deepEqual(await find({ matches: [GOLD, ANY] }), ['+db-net']);
  t.deepEqual(await find({ matches: [ANY, GOLD] }), [], 'order matters, as Go’s cmp.Equal');
  t.deepEqual(await find({ matches: [GOLD] }), [], 'all matches, not a subset');
  t.deepEqual(await find({ matches: [ANY] }), ['+web']);
});

test('NS watch: current, then update and delete', async (t) => {
  const { a } = await setup(t);
  await a.registerNs({ name: 'db-net' });
  const w = new Watch(a.ns.find({ networkService: { name: 'db-net' }, watch: true }));
  t.teardown(() => w.cancel());
  t.deepEqual(names(await w.take(1)), ['+db-net']);
  await a.registerNs({ name: 'other' });
  await a.registerNs({ name: 'db-net', matches: [ANY] });
  const [updated] = await w.take(1);
  t.is(updated?.networkService?.matches.length, 1);
  await a.unregisterNs({ name: 'db-net' });
  const [deleted] = await w.take(1);
  t.true(deleted?.deleted);
  t.is(deleted?.networkService?.name, 'db-net');
  t.true(await w.quiet(50));
});
