// The registry on the durable stores: the embedded store keeps registrations and ownership across a
// restart, and two registry servers on one etcd (one EtcdStore each, as two processes would have)
// share records, ownership and watches — an NSE that expires through an etcd lease is reported
// deleted to a watcher on the other server.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import type { NetworkServiceEndpointResponse } from '../../../src/api/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { systemClock } from '../../../src/host/index.js';
import { EmbeddedStore, EtcdStore } from '../../../src/store/index.js';
import { etcdAvailable, startEtcd } from '../../helpers/etcd.js';
import type { EtcdProcess } from '../../helpers/etcd.js';
import { RegistryClient, Watch, all, mesh, startRegistry } from './fixtures.js';

const names = (rs: readonly NetworkServiceEndpointResponse[]): string[] =>
  rs.map((r) => `${r.deleted ? '-' : '+'}${r.networkServiceEndpoint?.name ?? '?'}`);

let etcd: EtcdProcess | undefined;
test.before(async () => {
  if (etcdAvailable()) etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

test('embedded store: registrations and name ownership survive a registry restart; expiry still works after it', async (t) => {
  const m = await mesh();
  const dir = mkdtempSync(join(tmpdir(), 'nsm-registry-embedded-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const clock = new FakeClock(Date.now());

  const store1 = await EmbeddedStore.open({ dir, clock });
  const first = await startRegistry(t, { clock, store: store1 });
  const a1 = new RegistryClient(t, first.url, m.a, m.ca, clock);
  await a1.registerNse({ name: 'durable', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.1:1' });
  await a1.registerNs({ name: 'db-net' });
  await first.server.close({ graceMs: 50 });
  await store1.close();

  const store2 = await EmbeddedStore.open({ dir, clock });
  t.teardown(() => store2.close());
  const second = await startRegistry(t, { clock, store: store2 });
  const a2 = new RegistryClient(t, second.url, m.a, m.ca, clock);
  const b2 = new RegistryClient(t, second.url, m.b, m.ca, clock);
  t.deepEqual(names(await all(a2.nse.find({}))), ['+durable']);
  t.is((await all(a2.ns.find({}))).length, 1);
  const e = (await b2
    .registerNse({ name: 'durable', url: 'tcp://10.6.6.6:1' })
    .catch((x: unknown) => x)) as ServiceError;
  t.is(e.code, GrpcStatus.PERMISSION_DENIED, 'ownership survived the restart');

  const w = new Watch(a2.nse.find({ watch: true }));
  t.teardown(() => w.cancel());
  t.deepEqual(names(await w.take(1)), ['+durable']);
  await clock.advance(61_000);
  t.deepEqual(names(await w.take(1)), ['-durable'], 'the lease outlived the restart and expired on time');
});

(etcdAvailable() ? test : test.skip)(
  'etcd: two registry servers share records, ownership and watches; an etcd lease expiry reaches the other server’s watcher',
  async (t) => {
    const m = await mesh();
    const store1 = await EtcdStore.open({ url: etcd!.url, clock: systemClock });
    const store2 = await EtcdStore.open({ url: etcd!.url, clock: systemClock });
    t.teardown(async () => {
      await store1.close();
      await store2.close();
    });
    // etcd leases are whole seconds with a minimum; 1 s asks for the shortest etcd grants.
    const one = await startRegistry(t, { clock: systemClock, store: store1, defaultExpirationMs: 1_000 });
    const two = await startRegistry(t, { clock: systemClock, store: store2, defaultExpirationMs: 1_000 });
    const a1 = new RegistryClient(t, one.url, m.a, m.ca, systemClock);
    const b2 = new RegistryClient(t, two.url, m.b, m.ca, systemClock);

    const w = new Watch(
      b2.nse.find({ networkServiceEndpoint: { networkServiceNames: ['etcd-net'] }, watch: true }),
    );
    t.teardown(() => w.cancel());
    t.true(await w.quiet(100));
    const started = Date.now();
    await a1.registerNse({ name: 'via-etcd', networkServiceNames: ['etcd-net'], url: 'tcp://10.0.0.1:1' });
    t.deepEqual(names(await w.take(1, 5_000)), ['+via-etcd']);
    const e = (await b2
      .registerNse({ name: 'via-etcd', url: 'tcp://10.6.6.6:1' })
      .catch((x: unknown) => x)) as ServiceError;
    t.is(e.code, GrpcStatus.PERMISSION_DENIED, 'server two knows server one’s owner');
    t.deepEqual(names(await w.take(1, 10_000)), ['-via-etcd']);
    t.log(`deleted=true arrived ${Date.now() - started} ms after Register (etcd lease granularity)`);
    t.deepEqual(await all(a1.nse.find({ networkServiceEndpoint: { name: 'via-etcd' } })), []);
  },
);
