// The store contract against etcd over TLS with client-certificate auth (etcds://), as control
// servers on different hosts would use it.
import test from 'ava';
import { EtcdStore } from '../../../src/store/index.js';
import { etcdAvailable, startEtcd } from '../../helpers/etcd.js';
import type { EtcdProcess } from '../../helpers/etcd.js';
import { registerStoreContract } from '../../helpers/store-contract.js';

let etcd: EtcdProcess | undefined;
test.before(async () => {
  if (etcdAvailable()) etcd = await startEtcd({ tls: true });
});
test.after.always(async () => {
  await etcd?.stop();
});

if (etcdAvailable()) {
  registerStoreContract('etcd over TLS', () => EtcdStore.open({ url: etcd!.url, tls: etcd!.tls!.storeTls }), {
    leaseTtlMs: 2_000,
  });
} else {
  test('etcd TLS contract (needs /usr/bin/etcd from etcd-server)', (t) => {
    t.log('skipped: /usr/bin/etcd is not installed');
    t.pass();
  });
}
