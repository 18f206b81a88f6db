import test from 'ava';
import { deviceKey, netnsTextKey, parseNetnsView, splitListings } from '../../../src/forwarder/host-state.js';
import type { NetnsText } from '../../../src/forwarder/host-state.js';

// What `ip -json -batch -` prints for `addr show`, `route show …`, `neigh show proxy` (iproute2 6.1).
const addr =
  '[{"ifindex":1,"ifname":"lo","flags":["LOOPBACK","UP","LOWER_UP"],"mtu":65536,"operstate":"UNKNOWN","group":"default","addr_info":[{"family":"inet","local":"127.0.0.1","prefixlen":8,"scope":"host","valid_life_time":4294967295,"preferred_life_time":4294967295}]},' +
  '{"ifindex":3,"link":"d1","ifname":"d0","flags":["BROADCAST","UP"],"mtu":1500,"operstate":"UP","group":"77","addr_info":[{"family":"inet","local":"10.9.0.1","prefixlen":24,"scope":"global","label":"d0 ]\\n[x","valid_life_time":3597,"preferred_life_time":3597}]}]';
const routes =
  '[{"dst":"10.8.0.0/16","dev":"d0","scope":"link","flags":[]},{"dst":"fd00::/64","dev":"d0","metric":1024,"flags":[]}]';
const neigh = '[{"dst":"10.9.9.9","dev":"d0","proxy":null}]';

test('the listings of one ip -batch are told apart, also with "]\\n[" inside a string; anything else is not guessed at', (t) => {
  t.deepEqual(splitListings(`${addr}\n${routes}\n${neigh}\n`, 3), [addr, routes, neigh]);
  t.deepEqual(splitListings('[]\n[]\n', 2), ['[]', '[]']);
  t.deepEqual(splitListings('', 2), ['', '']);
  // Fewer or more listings than asked for, or output that is not one array per line.
  t.is(splitListings(`${addr}\n${routes}\n`, 3), undefined);
  t.is(splitListings(`${addr}\n[]\n[]\n[]\n`, 3), undefined);
  t.is(splitListings(`${addr}\nError: something\n[]\n`, 3), undefined);
  const view = parseNetnsView({ exists: true, addr, routes, neigh }, 252);
  t.deepEqual(view.groups, { d0: '77' });
  t.deepEqual(
    view.addresses.map((a) => `${a.dev} ${a.cidr}`),
    ['lo 127.0.0.1/8', 'd0 10.9.0.1/24'],
  );
  t.deepEqual(
    view.routes.map((r) => `${r.dst} ${r.protocol ?? ''}`),
    ['10.8.0.0/16 252', 'fd00::/64 252'],
  );
  t.deepEqual(view.proxies, [{ dst: '10.9.9.9', dev: 'd0' }]);
  t.false(parseNetnsView({ exists: false, addr: '', routes: '' }, 252).exists);
});

test('a netns read compares equal when only address lifetimes counted down; any other change makes it differ', (t) => {
  const text: NetnsText = { exists: true, addr, routes, neigh };
  const later = { ...text, addr: addr.replaceAll('3597', '3587') };
  t.is(netnsTextKey(later), netnsTextKey(text));
  for (const changed of [
    { ...text, addr: addr.replace('10.9.0.1', '10.9.0.2') },
    { ...text, addr: addr.replace('"mtu":1500', '"mtu":1400') },
    { ...text, routes: '[]' },
    { ...text, neigh: '[]' },
    { exists: false, addr: '', routes: '' },
  ])
    t.not(netnsTextKey(changed), netnsTextKey(text));
});

test("a device compares equal when only its peers' counters and handshakes moved, not when their configuration did", (t) => {
  const peer = {
    publicKey: 'p'.repeat(43) + '=',
    endpoint: '10.0.0.2:51820',
    allowedIps: ['169.254.0.2/32'],
    lastHandshakeMs: 1,
    rxBytes: 10,
    txBytes: 20,
    persistentKeepalive: 0,
  };
  const state = { name: 'nsm-wg0', publicKey: 'k'.repeat(43) + '=', listenPort: 51820, peers: [peer] };
  const busy = { ...state, peers: [{ ...peer, lastHandshakeMs: 99_000, rxBytes: 1e9, txBytes: 2e9 }] };
  t.is(deviceKey(busy), deviceKey(state));
  for (const changed of [
    { ...state, listenPort: 51821 },
    { ...state, peers: [] },
    { ...state, peers: [{ ...peer, endpoint: '10.0.0.3:51820' }] },
    { ...state, peers: [{ ...peer, allowedIps: ['169.254.0.2/32', '169.254.0.3/32'] }] },
    { ...state, peers: [{ ...peer, persistentKeepalive: 25 }] },
  ])
    t.not(deviceKey(changed), deviceKey(state));
});
