import { readFileSync } from 'node:fs';
import test from 'ava';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';
import { Ip, batchScript, parseAddresses, parseLinks, parseRoutes } from '../../../src/host/ip/index.js';

// Raw stdout recorded from iproute2 6.1 in a throwaway netns (veth, bridge, a wireguard-go tun).
const fixture = (name: string): string => readFileSync(new URL(`fixtures/${name}`, import.meta.url), 'utf8');

test('links: name, kind, master, veth peer, up flag from ip -json -details link show', (t) => {
  const links = parseLinks(fixture('ip-link-details.json'));
  t.deepEqual(
    links.map((l) => [l.name, l.kind ?? '-', l.master ?? '-', l.peer ?? '-', l.up, l.mtu]),
    [
      ['lo', '-', '-', '-', true, 65536],
      ['zv1', 'veth', 'zbr0', 'zv0', false, 1500],
      ['zv0', 'veth', '-', 'zv1', true, 1400],
      ['zbr0', 'bridge', '-', '-', false, 1500],
      ['zzrecwg', 'tun', '-', '-', false, 1420],
    ],
  );
});

test('addresses: flattened per interface, with prefix length and DAD state', (t) => {
  const addrs = parseAddresses(fixture('ip-addr.json'));
  t.deepEqual(
    addrs.filter((a) => a.dev === 'zv0').map((a) => [a.family, a.cidr, a.scope, a.tentative]),
    [
      ['inet', '10.9.0.1/24', 'global', false],
      ['inet6', 'fd00::1/64', 'global', true],
    ],
  );
  t.true(addrs.some((a) => a.dev === 'lo' && a.cidr === '127.0.0.1/8'));
});

test('routes: table and proto marks, gateway and metric', (t) => {
  const routes = parseRoutes(fixture('ip-route-all.json'), { table: 'all' });
  const ours = routes.filter((r) => r.protocol === '252');
  t.deepEqual(ours, [
    { dst: '10.10.0.0/16', dev: 'zv0', table: '100', protocol: '252', scope: 'link' },
    { dst: '10.12.0.0/16', dev: 'zv0', protocol: '252', scope: 'link' },
    { dst: 'fd01::/64', dev: 'zv0', protocol: '252', metric: 1024 },
  ]);
  const gw = routes.find((r) => r.dst === '10.11.0.0/16');
  t.like(gw, { gateway: '10.9.0.2', protocol: 'static', metric: 50 });
  t.true(routes.some((r) => r.table === 'local'));
});

test('routes: fields ip leaves out because the listing was filtered by them come from the filter', (t) => {
  const routes = parseRoutes(fixture('ip-route-table100-proto252.json'), { table: 100, protocol: 252 });
  t.deepEqual(routes, [{ dst: '10.10.0.0/16', dev: 'zv0', table: '100', protocol: '252', scope: 'link' }]);
});

test('a missing route table is an empty list, not an error', async (t) => {
  const runner = new RecordingRunner().on('ip -n h1 -json route show table 200 proto 252', {
    code: 2,
    stdout: '[',
    stderr: fixture('ip-route-missing-table.out').replace('[', ''),
  });
  t.deepEqual(await new Ip(runner, { netns: 'h1' }).routes({ table: 200, protocol: 252 }), []);
});

test('an unknown link is undefined; other failures throw', async (t) => {
  const runner = new RecordingRunner()
    .on('ip -json -details link show dev nope', { code: 1, stderr: 'Device "nope" does not exist.\n' })
    .on('ip -json -details link show dev bad', { code: 255, stderr: 'Error: something else\n' });
  const ip = new Ip(runner);
  t.is(await ip.link('nope'), undefined);
  await t.throwsAsync(ip.link('bad'), { message: /something else/ });
});

test('link, address and route changes: the command transcript', async (t) => {
  const runner = new RecordingRunner();
  const ip = new Ip(runner, { netns: 'nsmt-h1' });
  await ip.addVeth('v0', 'v1', { peerNetns: 'nsmt-br', mtu: 1400 });
  await ip.addBridge('br0');
  await ip.addDummy('d0');
  await ip.addWireGuard('wg0');
  await ip.setLink('v1', { master: 'br0', mtu: 1400, up: true });
  await ip.setLink('v1', { master: null });
  await ip.setLink('v1', {});
  await ip.setUp('v0');
  await ip.setDown('v0');
  await ip.setMtu('v0', 1380);
  await ip.moveToNetns('v0', 'other');
  await ip.addAddress('v0', '10.0.0.1/24');
  await ip.replaceAddress('v0', '10.0.0.1/24');
  await ip.deleteAddress('v0', '10.0.0.1/24');
  await ip.addRoute({ dst: '10.1.0.0/16', dev: 'wg0', table: 100, protocol: 252 });
  await ip.replaceRoute({ dst: '10.2.0.0/16', gateway: '10.0.0.2', metric: 10, src: '10.0.0.1' });
  await ip.deleteRoute({ dst: '10.1.0.0/16', dev: 'wg0', table: 100, protocol: 252 });
  await ip.deleteLink('v0');
  t.deepEqual(runner.lines, [
    'ip -n nsmt-h1 link add v0 mtu 1400 type veth peer name v1 netns nsmt-br',
    'ip -n nsmt-h1 link add br0 type bridge',
    'ip -n nsmt-h1 link add d0 type dummy',
    'ip -n nsmt-h1 link add wg0 type wireguard',
    'ip -n nsmt-h1 link set dev v1 mtu 1400 master br0 up',
    'ip -n nsmt-h1 link set dev v1 nomaster',
    'ip -n nsmt-h1 link set dev v0 up',
    'ip -n nsmt-h1 link set dev v0 down',
    'ip -n nsmt-h1 link set dev v0 mtu 1380',
    'ip -n nsmt-h1 link set dev v0 netns other',
    'ip -n nsmt-h1 addr add 10.0.0.1/24 dev v0',
    'ip -n nsmt-h1 addr replace 10.0.0.1/24 dev v0',
    'ip -n nsmt-h1 addr del 10.0.0.1/24 dev v0',
    'ip -n nsmt-h1 route add 10.1.0.0/16 dev wg0 table 100 proto 252',
    'ip -n nsmt-h1 route replace 10.2.0.0/16 via 10.0.0.2 metric 10 src 10.0.0.1',
    'ip -n nsmt-h1 route del 10.1.0.0/16 dev wg0 table 100 proto 252',
    'ip -n nsmt-h1 link del dev v0',
  ]);
});

test('200 routes go through one ip -batch exec', async (t) => {
  const runner = new RecordingRunner();
  const cmds = Array.from({ length: 200 }, (_, i) => [
    'route',
    'replace',
    `10.${i >> 8}.${i & 255}.0/24`,
    'dev',
    'wg0',
    'proto',
    '252',
  ]);
  await new Ip(runner).batch(cmds);
  t.deepEqual(runner.transcript, [['ip', '-batch', '-']]);
  const input = runner.calls[0]?.input ?? '';
  t.is(input.split('\n').length, 201);
  t.true(input.startsWith('route replace 10.0.0.0/24 dev wg0 proto 252\nroute replace 10.0.1.0/24'));
});

test('a failing batch line is named in the error', async (t) => {
  const runner = new RecordingRunner().on('ip -force -batch -', {
    code: 1,
    stderr: 'RTNETLINK answers: File exists\nCommand failed -:2\n',
  });
  await t.throwsAsync(
    new Ip(runner).batch(
      [
        ['route', 'add', '10.1.0.0/24', 'dev', 'x'],
        ['route', 'add', '10.2.0.0/24', 'dev', 'x'],
      ],
      { force: true },
    ),
    { message: /line 2 \(route add 10\.2\.0\.0\/24 dev x\): RTNETLINK answers: File exists/ },
  );
});

test('batch refuses words ip would split or quote', (t) => {
  t.throws(() => batchScript([['link', 'add', 'a b']]), { message: /ip -batch/ });
  t.throws(() => batchScript([['addr', 'add', '#x']]));
  t.throws(() => batchScript([[]]));
  t.is(batchScript([['link', 'set', 'x', 'up']]), 'link set x up\n');
});
