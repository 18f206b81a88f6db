import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import {
  CommonParam,
  DefaultPort,
  isMechanismType,
  isValidInterfaceName,
  isWireguardKey,
  KernelParam,
  kernelMechanism,
  Label,
  MECHANISM_CLASS_OF,
  MechanismClass,
  MechanismType,
  noopMechanism,
  OWN_NETNS_URL,
  Payload,
  vxlanMechanism,
  VxlanParam,
  wireguardMechanism,
  WireguardParam,
} from '../../../src/api/index.js';

const KEY_A = 'YAnz8cF6V2ZFrAkwYp1QJOMI2y0zEfS3PqNRQO/AjEg=';
const KEY_B = 'xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=';

test('wire strings are spelled exactly as upstream', (t) => {
  t.deepEqual(MechanismClass, { LOCAL: 'LOCAL', REMOTE: 'REMOTE' });
  t.deepEqual(Object.values(MechanismType).sort(), [
    'IPSEC',
    'KERNEL',
    'MEMIF',
    'NOOP',
    'SRV6',
    'VFIO',
    'VLAN',
    'VXLAN',
    'WIREGUARD',
  ]);
  t.deepEqual(CommonParam, {
    SRC_IP: 'src_ip',
    DST_IP: 'dst_ip',
    SRC_PORT: 'src_port',
    DST_PORT: 'dst_port',
    ORIG_SRC_IP: 'orig_src_ip',
    ORIG_DST_IP: 'orig_dst_ip',
    NETNS_INODE: 'netnsInode',
    INTERFACE_NAME: 'name',
    INODE_URL: 'inodeURL',
    PCI_ADDRESS: 'pciAddress',
    DEVICE_TOKEN_ID: 'tokenID',
    MTU: 'MTU',
  });
  t.is(KernelParam.SUPPORTS_VLAN, 'supportsVlan');
  t.is(KernelParam.VLAN, 'vlan');
  t.is(KernelParam.ROUTE_LOCAL_NET, 'routeLocalNet');
  t.is(KernelParam.IPTABLES4_NAT_TEMPLATE, 'IPTables4NatTemplate');
  t.is(WireguardParam.SRC_PUBLIC_KEY, 'src_public_key');
  t.is(WireguardParam.DST_PUBLIC_KEY, 'dst_public_key');
  t.is(VxlanParam.VNI, 'vni');
  t.deepEqual(DefaultPort, { WIREGUARD: 51820, VXLAN: 4789, IPSEC: 4500 });
  t.deepEqual(Payload, { IP: 'IP', ETHERNET: 'ETHERNET' });
  t.deepEqual(Label, { SRIOV_TOKEN: 'sriovToken', SERVICE_DOMAIN: 'serviceDomain' });
});

test('each mechanism type has the class NSM uses it with', (t) => {
  for (const type of ['KERNEL', 'MEMIF', 'VFIO', 'NOOP'] as const) t.is(MECHANISM_CLASS_OF[type], 'LOCAL');
  for (const type of ['VXLAN', 'WIREGUARD', 'IPSEC', 'VLAN', 'SRV6'] as const)
    t.is(MECHANISM_CLASS_OF[type], 'REMOTE');
  t.true(isMechanismType('KERNEL'));
  t.false(isMechanismType('kernel'));
  t.false(isMechanismType('toString'));
});

test('kernelMechanism defaults to the own netns URL and omits the name', (t) => {
  const m = kernelMechanism();
  t.is(m.cls, 'LOCAL');
  t.is(m.type, 'KERNEL');
  t.deepEqual(m.parameters, { inodeURL: OWN_NETNS_URL });
});

test('kernelMechanism sets name and inodeURL', (t) => {
  const m = kernelMechanism({ name: 'nsm-1', inodeURL: 'inode://4/4026532000' });
  t.deepEqual(m.parameters, { inodeURL: 'inode://4/4026532000', name: 'nsm-1' });
});

test('kernelMechanism rejects interface names the kernel would reject', (t) => {
  for (const name of ['', 'a-very-long-name0', 'eth/0', 'eth:0', 'eth 0', '.', '..', 'ééééééééé']) {
    const e = t.throws(() => kernelMechanism({ name }), { instanceOf: AgentError }, name);
    t.is(e.code, 'INVALID_ARGUMENT');
    t.regex(e.message, /KERNEL mechanism: name/);
  }
  t.throws(() => kernelMechanism({ inodeURL: '' }), { instanceOf: AgentError });
});

test('isValidInterfaceName accepts 15 bytes and no more', (t) => {
  t.true(isValidInterfaceName('abcdefghijklmno'));
  t.false(isValidInterfaceName('abcdefghijklmnop'));
  t.true(isValidInterfaceName('nsm-1.100'));
});

test('noopMechanism is a LOCAL NOOP without parameters', (t) => {
  const m = noopMechanism();
  t.is(m.cls, 'LOCAL');
  t.is(m.type, 'NOOP');
  t.deepEqual(m.parameters, {});
});

test('wireguardMechanism builds the client offer with the default port', (t) => {
  const m = wireguardMechanism({ srcIp: '192.0.2.1', srcPublicKey: KEY_A });
  t.is(m.cls, 'REMOTE');
  t.is(m.type, 'WIREGUARD');
  t.deepEqual(m.parameters, { src_ip: '192.0.2.1', src_port: '51820', src_public_key: KEY_A });
});

test('wireguardMechanism builds a full server answer', (t) => {
  const m = wireguardMechanism({
    srcIp: '2001:db8::1',
    srcPort: 51821,
    srcPublicKey: KEY_A,
    dstIp: '2001:db8::2',
    dstPort: 51822,
    dstPublicKey: KEY_B,
    mtu: 1420,
  });
  t.deepEqual(m.parameters, {
    src_ip: '2001:db8::1',
    src_port: '51821',
    src_public_key: KEY_A,
    dst_ip: '2001:db8::2',
    dst_port: '51822',
    dst_public_key: KEY_B,
    MTU: '1420',
  });
});

test('wireguardMechanism rejects bad addresses, ports, keys and MTUs with the parameter name', (t) => {
  const base = { srcIp: '192.0.2.1', srcPublicKey: KEY_A };
  const cases: readonly [string, Parameters<typeof wireguardMechanism>[0], RegExp][] = [
    ['cidr address', { ...base, srcIp: '192.0.2.1/32' }, /src_ip "192\.0\.2\.1\/32"/],
    ['hostname', { ...base, dstIp: 'peer.example' }, /dst_ip/],
    ['port 0', { ...base, srcPort: 0 }, /src_port 0/],
    ['port 65536', { ...base, dstPort: 65536 }, /dst_port 65536/],
    ['fractional port', { ...base, srcPort: 51820.5 }, /src_port/],
    ['short key', { ...base, srcPublicKey: 'abc=' }, /src_public_key/],
    ['key without padding', { ...base, dstPublicKey: KEY_B.slice(0, 43) }, /dst_public_key/],
    ['mtu 0', { ...base, mtu: 0 }, /MTU 0/],
    ['mtu too large', { ...base, mtu: 70000 }, /MTU 70000/],
  ];
  for (const [name, options, message] of cases) {
    const e = t.throws(() => wireguardMechanism(options), { instanceOf: AgentError, message }, name);
    t.is(e.code, 'INVALID_ARGUMENT', name);
  }
});

test('isWireguardKey accepts only canonical base64 of 32 bytes', (t) => {
  t.true(isWireguardKey(KEY_A));
  t.false(isWireguardKey(KEY_A.replace('=', 'A')));
  // The last character before '=' must leave the unused low bits zero.
  t.false(isWireguardKey(`${KEY_A.slice(0, 42)}B=`));
});

test('vxlanMechanism builds offers and checks the VNI range', (t) => {
  const m = vxlanMechanism({ srcIp: '192.0.2.1', dstIp: '192.0.2.2', vni: 0xff_ffff, mtu: 1450 });
  t.deepEqual(m.parameters, {
    src_ip: '192.0.2.1',
    src_port: '4789',
    dst_ip: '192.0.2.2',
    vni: '16777215',
    MTU: '1450',
  });
  t.is(m.cls, 'REMOTE');
  t.is(m.type, 'VXLAN');
  t.throws(() => vxlanMechanism({ srcIp: '192.0.2.1', vni: 0x100_0000 }), {
    instanceOf: AgentError,
    message: /vni/,
  });
  t.throws(() => vxlanMechanism({ srcIp: '192.0.2.1', vni: -1 }), { instanceOf: AgentError, message: /vni/ });
});
