import test from 'ava';
import { EtcdStore } from '../../../src/store/index.js';
import { etcdAvailable, startEtcd } from '../../helpers/etcd.js';
import type { EtcdProcess } from '../../helpers/etcd.js';
import { registerStoreContract } from '../../helpers/store-contract.js';

let etcd: EtcdProcess | undefined;
test.before(async () => {
  if (etcdAvailable()) etcd = await startEtcd();
});
test.after.always(async () => {
  await etcd?.stop();
});

if (etcdAvailable()) {
  // etcd counts lease TTLs in whole seconds and grants at least its minimum (2 s with defaults).
  registerStoreContract('etcd', () => EtcdStore.open({ url: etcd!.url }), { leaseTtlMs: 2_000 });
} else {
  test('etcd contract (needs /usr/bin/etcd from etcd-server)', (t) => {
    t.log('skipped: /usr/bin/etcd is not installed');
    t.pass();
  });
}
