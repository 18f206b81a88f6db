import test from 'ava';
import { AgentError } from '../../../src/errors/agent-error.js';
import { ServiceIpam } from '../../../src/workloads/index.js';

const web = (cidr = '169.254.0.0/16'): ServiceIpam => new ServiceIpam({ service: 'web', cidr });

test('the service address depends only on service and range, and is pinned across versions', (t) => {
  // Every host exposing "web" must answer at the same address, whatever agent version it runs:
  // a change here breaks consumers whose connection heals to a host with another version.
  t.is(web().serviceAddress, '169.254.235.142/32');
  t.is(web().serviceIp, '169.254.235.142');
  t.is(web('fd00:6e73:6d::/64').serviceAddress, 'fd00:6e73:6d:0:574:70eb:a0d5:7431/128');

  const a = web();
  a.allocate('client-1');
  a.allocate('client-2');
  t.is(a.serviceAddress, web().serviceAddress, 'allocations do not move it');
  t.not(new ServiceIpam({ service: 'db', cidr: '169.254.0.0/16' }).serviceAddress, a.serviceAddress);
  t.not(web('10.20.0.0/16').serviceAddress, a.serviceAddress);
});

test('the service address never is the network or broadcast address', (t) => {
  for (let i = 0; i < 300; i++) {
    const ipam = new ServiceIpam({ service: `s${i}`, cidr: '10.0.0.0/29' });
    t.true(ipam.serviceIp !== '10.0.0.0' && ipam.serviceIp !== '10.0.0.7', ipam.serviceIp);
  }
});

test('a client address is derived from the connection key: an agent restarted with no memory gives the same', (t) => {
  const before = web();
  const addresses = ['a', 'b', 'c'].map((k) => before.allocate(k));
  const after = web();
  t.deepEqual(
    ['a', 'b', 'c'].map((k) => after.allocate(k)),
    addresses,
  );
  t.is(new Set(addresses).size, 3);
  for (const a of addresses) t.regex(a, /^169\.254\.\d+\.\d+\/32$/);
  t.false(addresses.includes(before.serviceAddress));
});

test('a refresh keeps its address; with no request it gets the one it holds', (t) => {
  const ipam = web();
  const first = ipam.allocate('k');
  t.is(ipam.allocate('k', [first]), first);
  t.is(ipam.allocate('k'), first);
  t.is(ipam.addressOf('k'), first);
  t.is(ipam.inUse, 1);
});

test('a requested address is honoured when it is in range, not the service address and free', (t) => {
  const ipam = web();
  t.is(ipam.allocate('k1', ['169.254.9.9/32']), '169.254.9.9/32');
  t.is(ipam.allocate('k2', ['169.254.9.10']), '169.254.9.10/32', 'a bare address works too');

  const taken = ipam.allocate('k3', ['169.254.9.9/32']);
  t.not(taken, '169.254.9.9/32', 'held by another connection');
  t.is(taken, web().allocate('k3'), 'falls back to the derived address');

  t.not(ipam.allocate('k4', [ipam.serviceAddress]), ipam.serviceAddress);
  t.not(ipam.allocate('k5', ['10.0.0.1/32']), '10.0.0.1/32', 'outside the range');
  t.not(ipam.allocate('k6', ['169.254.0.0/32']), '169.254.0.0/32', 'the network address');
  t.not(ipam.allocate('k7', ['169.254.255.255/32']), '169.254.255.255/32', 'the broadcast address');
  t.not(ipam.allocate('k8', ['not-an-ip']), 'not-an-ip');
  t.is(ipam.allocate('k9', ['nonsense', '10.0.0.1/32', '169.254.7.7/32']), '169.254.7.7/32', 'first usable');
});

test('a requested address moves the connection and frees the old one', (t) => {
  const ipam = web();
  const first = ipam.allocate('k');
  t.is(ipam.allocate('k', ['169.254.1.1/32']), '169.254.1.1/32');
  t.is(ipam.inUse, 1);
  t.is(ipam.allocate('other', [first]), first, 'the old address is free again');
});

test('agents restarted with no memory take back every address from the refreshes, in any order', (t) => {
  const before = web('10.9.0.0/29');
  const keys = ['a', 'b', 'c', 'd', 'e'];
  const held = new Map(keys.map((k) => [k, before.allocate(k)]));
  const after = web('10.9.0.0/29');
  for (const k of [...keys].reverse()) t.is(after.allocate(k, [held.get(k)!]), held.get(k)!);
});

test('collisions probe to the next free address; a full range is RESOURCE_EXHAUSTED with a hint', (t) => {
  const ipam = web('10.9.0.0/29'); // 6 usable: the service address and 5 clients
  t.is(ipam.capacity, 5n);
  const addresses = ['a', 'b', 'c', 'd', 'e'].map((k) => ipam.allocate(k));
  t.is(new Set(addresses).size, 5);
  const all = new Set([...addresses, ipam.serviceAddress]);
  t.deepEqual([...all].sort(), [
    '10.9.0.1/32',
    '10.9.0.2/32',
    '10.9.0.3/32',
    '10.9.0.4/32',
    '10.9.0.5/32',
    '10.9.0.6/32',
  ]);

  const e = t.throws(() => ipam.allocate('f'), { instanceOf: AgentError });
  t.is(e.code, 'RESOURCE_EXHAUSTED');
  t.is(
    e.message.split(';')[0],
    'service "web" has no free client address: all 5 addresses of 10.9.0.0/29 are in use',
  );
  t.regex(e.hint ?? '', /--cidr shorter than \/29/);
  t.is(ipam.allocate('a'), addresses[0]!, 'a connection that holds one still gets it');

  t.true(ipam.release('c'));
  t.false(ipam.release('c'));
  t.is(ipam.allocate('f'), addresses[2]!, 'the freed address is the only one left');
});

test('a /30 has room for one client', (t) => {
  const ipam = web('192.168.7.0/30');
  t.true(['192.168.7.1/32', '192.168.7.2/32'].includes(ipam.serviceAddress));
  const client = ipam.allocate('one');
  t.true(['192.168.7.1/32', '192.168.7.2/32'].includes(client));
  t.not(client, ipam.serviceAddress);
  t.is(t.throws(() => ipam.allocate('two'), { instanceOf: AgentError }).code, 'RESOURCE_EXHAUSTED');
});

test('/31 uses both addresses; /32 is refused as too small', (t) => {
  const p2p = web('192.168.7.0/31');
  t.deepEqual([p2p.serviceAddress, p2p.allocate('one')].sort(), ['192.168.7.0/32', '192.168.7.1/32']);
  const e = t.throws(() => web('192.168.7.1/32'), { instanceOf: AgentError });
  t.is(e.code, 'INVALID_ARGUMENT');
  t.regex(e.message, /192\.168\.7\.1\/32 is too small for service "web"/);
  t.is(t.throws(() => web('fd00::1/128'), { instanceOf: AgentError }).code, 'INVALID_ARGUMENT');
});

test('a range that is not a CIDR is INVALID_ARGUMENT', (t) => {
  for (const bad of ['169.254.0.0', '169.254.0.0/33', '300.1.1.1/8', 'fd00::/129', 'web', '']) {
    const e = t.throws(() => web(bad), { instanceOf: AgentError }, bad);
    t.is(e.code, 'INVALID_ARGUMENT');
    t.regex(e.message, /is not an IPv4 or IPv6 CIDR/);
  }
  t.is(web('10.1.2.3/16').cidr, '10.1.0.0/16', 'host bits are cleared');
});

test('IPv6: host prefixes in canonical text, requests in any spelling, IPv4 requests ignored', (t) => {
  const ipam = web('fd00:6e73:6d::/64');
  t.is(ipam.family, 6);
  const a = ipam.allocate('k1');
  t.regex(a, /^fd00:6e73:6d:0:[0-9a-f:]+\/128$/);
  t.is(web('fd00:6e73:6d::/64').allocate('k1'), a);
  t.is(ipam.allocate('k2', ['FD00:6E73:006D:0000:0000:0000:0000:0005/128']), 'fd00:6e73:6d::5/128');
  t.not(ipam.allocate('k3', ['169.254.1.1/32']), '169.254.1.1/32');
  t.true(ipam.contains('fd00:6e73:6d::5'));
  t.false(ipam.contains('fd00:6e73:6e::5'));

  const small = web('fd00::/126'); // 3 usable (the all-zero one skipped): service + 2 clients
  t.is(small.capacity, 2n);
  small.allocate('x');
  small.allocate('y');
  t.is(t.throws(() => small.allocate('z'), { instanceOf: AgentError }).code, 'RESOURCE_EXHAUSTED');
});
