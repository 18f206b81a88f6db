import test from 'ava';
import { parseEtcdUrl } from '../../../src/store/index.js';
import { KeySpace, prefixEnd } from '../../../src/store/etcd/key-space.js';

test('etcd://host:port on loopback parses to one plaintext member', (t) => {
  t.deepEqual(parseEtcdUrl('etcd://127.0.0.1:2379'), {
    tls: false,
    endpoints: [{ grpc: { kind: 'tcp', host: '127.0.0.1', port: 2379 }, text: '127.0.0.1:2379' }],
    text: 'etcd://127.0.0.1:2379',
  });
  t.is(parseEtcdUrl('etcd://localhost:12379').endpoints[0].grpc.port, 12379);
  t.is(parseEtcdUrl('etcd://[::1]:2379').text, 'etcd://[::1]:2379');
});

test('etcds:// takes any host, and several members in order', (t) => {
  const u = parseEtcdUrl('etcds://etcd-1.example:2379,10.0.0.2:2379,[fd00::3]:2379');
  t.true(u.tls);
  t.deepEqual(
    u.endpoints.map((e) => [e.grpc.host, e.grpc.port, e.text]),
    [
      ['etcd-1.example', 2379, 'etcd-1.example:2379'],
      ['10.0.0.2', 2379, '10.0.0.2:2379'],
      ['fd00::3', 2379, '[fd00::3]:2379'],
    ],
  );
  t.is(u.text, 'etcds://etcd-1.example:2379,10.0.0.2:2379,[fd00::3]:2379');
  t.is(parseEtcdUrl('etcd://127.0.0.1:1,127.0.0.2:2').endpoints.length, 2);
});

test('bad etcd URLs are CONFIG_INVALID with the expected forms', (t) => {
  for (const bad of [
    'etcd://',
    'etcd://127.0.0.1',
    'http://127.0.0.1:2379',
    'https://etcd.example:2379',
    'etcd://127.0.0.1:0',
    '127.0.0.1:2379',
    'etcds://a.example:2379,',
    'etcds://a.example:2379,a.example:2379',
  ]) {
    const e = t.throws(() => parseEtcdUrl(bad), undefined, bad);
    t.is((e as { code?: string }).code, 'CONFIG_INVALID', bad);
    t.regex(e.message, /etcds:\/\/host:port/, bad);
  }
});

test('plaintext etcd:// to another host is refused, pointing at etcds:// with the same members', (t) => {
  const remote = t.throws(() => parseEtcdUrl('etcd://127.0.0.1:2379,10.1.2.3:2379'));
  t.is((remote as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(remote.message, /10\.1\.2\.3:2379 is another host, and etcd:\/\/ is plaintext/);
  t.regex(remote.message, /use etcds:\/\/127\.0\.0\.1:2379,10\.1\.2\.3:2379 with --store-ca/);
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
