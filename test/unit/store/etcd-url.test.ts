import test from 'ava';
import { parseEtcdUrl } from '../../../src/store/index.js';
import { KeySpace, prefixEnd } from '../../../src/store/etcd/key-space.js';

test('etcd://host:port on loopback parses to a tcp gRPC address', (t) => {
  t.deepEqual(parseEtcdUrl('etcd://127.0.0.1:2379'), {
    grpc: { kind: 'tcp', host: '127.0.0.1', port: 2379 },
    text: 'etcd://127.0.0.1:2379',
  });
  t.is(parseEtcdUrl('etcd://localhost:12379').grpc.port, 12379);
  t.is(parseEtcdUrl('etcd://[::1]:2379').text, 'etcd://[::1]:2379');
});

test('bad etcd URLs are CONFIG_INVALID with the expected form; remote or TLS says it is not supported yet', (t) => {
  for (const bad of [
    'etcd://',
    'etcd://127.0.0.1',
    'http://127.0.0.1:2379',
    'etcd://127.0.0.1:0',
    '127.0.0.1:2379',
  ]) {
    const e = t.throws(() => parseEtcdUrl(bad), undefined, bad);
    t.is((e as { code?: string }).code, 'CONFIG_INVALID', bad);
    t.regex(e.message, /etcd:\/\/host:port/, bad);
  }
  const remote = t.throws(() => parseEtcdUrl('etcd://10.1.2.3:2379'));
  t.regex(remote.message, /TLS to etcd is not supported yet/);
  const tls = t.throws(() => parseEtcdUrl('etcds://127.0.0.1:2379'));
  t.regex(tls.message, /TLS to etcd is not supported yet/);
});

test('prefix ranges follow etcd: last byte below 0xff incremented, trailing 0xff dropped', (t) => {
  t.deepEqual([...prefixEnd(Uint8Array.of(0x61, 0x62))], [0x61, 0x63]);
  t.deepEqual([...prefixEnd(Uint8Array.of(0x61, 0xff, 0xff))], [0x62]);
  t.deepEqual([...prefixEnd(Uint8Array.of(0xff))], [0]);
  const ks = new KeySpace('/nsm-agent/');
  t.is(ks.decode(ks.encode('/nse/ü')), '/nse/ü');
  t.is(ks.decode(new TextEncoder().encode('/other/x')), undefined);
  const { key, rangeEnd } = ks.range('/nse/');
  t.is(Buffer.from(key).toString(), '/nsm-agent//nse/');
  t.is(Buffer.from(rangeEnd).toString(), '/nsm-agent//nse0');
});
