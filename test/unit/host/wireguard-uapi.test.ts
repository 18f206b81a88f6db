import { readFileSync } from 'node:fs';
import test from 'ava';
import { keyToHex } from '../../../src/host/wireguard/keys.js';
import { parseUapiGet, uapiErrno, uapiSetRequest } from '../../../src/host/wireguard/uapi.js';
import { parseWgDump } from '../../../src/host/wireguard/wg-dump.js';

const fixture = (name: string): string => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8');
const priv = '6MV8TtALvgNzd5sR+uLbfd5GwV9ukK25RrEh1J6vTlE=';
const pub = 'DdPiPIErSDU4PSqhfjepN2GjPCeQEe1uq/sJz2umsW8=';
const peerA = 'iNqrzvbg+Y0mDZU5lhDAjts6PEHjt14TdZYjh0HrcRY=';

test('set request: device settings in hex, peers with replace_allowed_ips, removals', (t) => {
  const req = uapiSetRequest(
    { privateKey: priv, listenPort: 51820 },
    {
      replacePeers: true,
      removePeers: [pub],
      peers: [
        {
          publicKey: peerA,
          endpoint: '10.0.0.2:51820',
          allowedIps: ['10.1.0.0/24', 'fd00::/64'],
          persistentKeepalive: 25,
        },
      ],
    },
  );
  t.is(
    req,
    [
      'set=1',
      `private_key=${keyToHex(priv)}`,
      'listen_port=51820',
      'replace_peers=true',
      `public_key=${keyToHex(pub)}`,
      'remove=true',
      `public_key=${keyToHex(peerA)}`,
      'endpoint=10.0.0.2:51820',
      'persistent_keepalive_interval=25',
      'replace_allowed_ips=true',
      'allowed_ip=10.1.0.0/24',
      'allowed_ip=fd00::/64',
      '',
      '',
    ].join('\n'),
  );
  t.false(req.includes(priv), 'keys are hex on the wire, never base64');
});

test('set request refuses bad endpoints, CIDRs and ports', (t) => {
  t.throws(() => uapiSetRequest({}, { peers: [{ publicKey: peerA, endpoint: 'host:1', allowedIps: [] }] }), {
    message: /resolve host names/,
  });
  t.throws(() =>
    uapiSetRequest({}, { peers: [{ publicKey: peerA, allowedIps: ['10.0.0.1\nlisten_port=1'] }] }),
  );
  t.throws(() => uapiSetRequest({ listenPort: 70000 }));
  t.is(
    uapiSetRequest({}, { peers: [{ publicKey: peerA, endpoint: '[fd00::2]:51820', allowedIps: [] }] }).split(
      '\n',
    )[2],
    'endpoint=[fd00::2]:51820',
  );
});

test('get reply (recorded from wireguard-go 0.0.20220316): device public key, peers, handshake, counters', (t) => {
  const s = parseUapiGet('wg0', fixture('uapi-get.txt'));
  t.is(s.name, 'wg0');
  t.true(s.publicKey !== undefined && s.publicKey.length === 44);
  t.true(s.listenPort > 0);
  t.is(s.peers.length, 1);
  const p = s.peers[0]!;
  t.regex(p.endpoint ?? '', /^10\.\d+\.\d+\.\d+:\d+$/);
  t.true(p.lastHandshakeMs > Date.UTC(2024, 0, 1));
  t.true(p.rxBytes > 0 && p.txBytes > 0);
  t.true(p.allowedIps.length > 0);
  t.false(JSON.stringify(s).includes('private'), 'the private key is not part of the state');
});

test('get reply: hand-written two peers, nsec handshake, no endpoint', (t) => {
  const reply = [
    `private_key=${keyToHex(priv)}`,
    'listen_port=51820',
    `public_key=${keyToHex(peerA)}`,
    'protocol_version=1',
    'last_handshake_time_sec=1700000000',
    'last_handshake_time_nsec=500000000',
    'tx_bytes=10',
    'rx_bytes=20',
    'persistent_keepalive_interval=0',
    'allowed_ip=10.1.0.0/24',
    `public_key=${keyToHex(pub)}`,
    'endpoint=10.0.0.3:51820',
    'last_handshake_time_sec=0',
    'last_handshake_time_nsec=0',
    'errno=0',
    '',
    '',
  ].join('\n');
  t.deepEqual(parseUapiGet('wg0', reply), {
    name: 'wg0',
    publicKey: pub,
    listenPort: 51820,
    peers: [
      {
        publicKey: peerA,
        allowedIps: ['10.1.0.0/24'],
        lastHandshakeMs: 1_700_000_000_500,
        rxBytes: 20,
        txBytes: 10,
        persistentKeepalive: 0,
      },
      {
        publicKey: pub,
        endpoint: '10.0.0.3:51820',
        allowedIps: [],
        lastHandshakeMs: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 0,
      },
    ],
  });
});

test('errno: success, failure, and a reply cut short', (t) => {
  t.is(uapiErrno('errno=0\n\n'), 0);
  t.is(uapiErrno('errno=-98\n\n'), -98);
  t.throws(() => uapiErrno('listen_port=1\n'), { message: /ended without errno/ });
  t.throws(() => parseUapiGet('wg0', 'errno=5\n\n'), { message: /errno 5/ });
});

test('wg show dump (recorded): device and peers', (t) => {
  t.deepEqual(parseWgDump('wg0', fixture('wg-show-dump.txt')), {
    name: 'wg0',
    publicKey: pub,
    listenPort: 51999,
    peers: [
      {
        publicKey: peerA,
        endpoint: '10.0.0.2:51820',
        allowedIps: ['10.1.0.0/24', 'fd00::/64'],
        lastHandshakeMs: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 25,
      },
    ],
  });
  t.throws(() => parseWgDump('wg0', 'garbage\n'));
});
