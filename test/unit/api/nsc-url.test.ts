import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { parseNscUrl } from '../../../src/api/index.js';

// The first four mirror sdk tools/nsurl's own samples, so both parsers agree on them.
test('vfio://my-service/nsm-1', (t) => {
  const u = parseNscUrl('vfio://my-service/nsm-1');
  t.is(u.mechanism.cls, 'LOCAL');
  t.is(u.mechanism.type, 'VFIO');
  t.deepEqual(u.mechanism.parameters, { name: 'nsm-1' });
  t.is(u.networkService, 'my-service');
  t.deepEqual(u.labels, {});
});

test('a label value may contain "/"', (t) => {
  const u = parseNscUrl('vfio://second-service?sriovToken=intel/10G');
  t.is(u.networkService, 'second-service');
  t.deepEqual(u.mechanism.parameters, {});
  t.deepEqual(u.labels, { sriovToken: 'intel/10G' });
});

test('several labels', (t) => {
  const u = parseNscUrl('memif://my-vpp-service?A=1&B=2&C=3');
  t.is(u.mechanism.type, 'MEMIF');
  t.deepEqual(u.labels, { A: '1', B: '2', C: '3' });
});

test('interdomain service name@domain with interface', (t) => {
  const u = parseNscUrl('kernel://my-service@dc.example.com/ms1');
  t.is(u.mechanism.type, 'KERNEL');
  t.is(u.networkService, 'my-service@dc.example.com');
  t.deepEqual(u.mechanism.parameters, { name: 'ms1' });
});

test('a label given twice has its values joined with ","', (t) => {
  t.deepEqual(parseNscUrl('kernel://ns?app=a&app=b&x=1').labels, { app: 'a,b', x: '1' });
});

test('query decoding: %XX, "+" as space, key without "=", empty pairs', (t) => {
  t.deepEqual(parseNscUrl('kernel://ns?team=net+ops&city=M%C3%BCnchen&flag&&x=').labels, {
    team: 'net ops',
    city: 'München',
    flag: '',
    x: '',
  });
});

test('a "+" in the interface path stays a "+"', (t) => {
  t.deepEqual(parseNscUrl('kernel://ns/a+b').mechanism.parameters, { name: 'a+b' });
});

test('scheme is case-insensitive; surrounding spaces are ignored', (t) => {
  const u = parseNscUrl('  KERNEL://ns/nsm-1 ');
  t.is(u.mechanism.type, 'KERNEL');
  t.is(u.networkService, 'ns');
});

test('a trailing "/" leaves the interface name to the forwarder', (t) => {
  t.deepEqual(parseNscUrl('kernel://ns/').mechanism.parameters, {});
});

test('a label named __proto__ is an ordinary label', (t) => {
  const labels = parseNscUrl('kernel://ns?__proto__=x').labels;
  t.true(Object.hasOwn(labels, '__proto__'));
  t.is(Object.getPrototypeOf(labels), Object.prototype);
});

const bad: readonly (readonly [string, RegExp])[] = [
  ['', /not of the form/],
  ['my-service', /not of the form/],
  ['kernel:/my-service', /not of the form/],
  ['kernel://', /network service name is missing/],
  ['kernel:///nsm-1', /network service name is missing/],
  ['wireguard://ns', /"wireguard" is not a client mechanism; use one of kernel, memif, vfio, noop/],
  ['bogus://ns', /not a client mechanism/],
  ['kernel://ns:5001', /no port/],
  ['kernel://a@b@c', /more than one "@"/],
  ['kernel://@domain', /network service ""/],
  ['kernel://ns@', /domain ""/],
  ['kernel://-ns', /network service "-ns"/],
  ['kernel://ns/a/b', /more than one path segment/],
  ['kernel://ns/this-name-is-too-long', /interface name "this-name-is-too-long" must be 1\.\.15 bytes/],
  ['kernel://ns/a%20b', /interface name "a b"/],
  ['kernel://ns/%zz', /bad %-escape/],
  ['kernel://ns?a=%E0%A4%A', /bad %-escape/],
  ['kernel://ns?a=1;b=2', /with "&", not ";"/],
  ['kernel://ns?=v', /has no name/],
  ['kernel://ns#frag', /fragment/],
];

for (const [url, why] of bad) {
  test(`rejects ${JSON.stringify(url)} and says what a valid URL looks like`, (t) => {
    const e = t.throws(() => parseNscUrl(url), { instanceOf: AgentError, message: why });
    t.is(e.code, 'INVALID_ARGUMENT');
    t.true(e.message.includes('<mechanism>://<network-service>[@<domain>][/<interface>][?label=value&...]'));
    t.true(e.message.includes('kernel://my-service@my.domain/nsm-1?app=web'));
  });
}
