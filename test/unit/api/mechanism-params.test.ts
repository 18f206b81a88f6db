import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import {
  create,
  MechanismSchema,
  readBool,
  readIp,
  readMtu,
  readParam,
  readPort,
  readVlan,
  readVni,
  readWireguardKey,
  requireParam,
} from '../../../src/api/index.js';
import type { Mechanism } from '../../../src/api/index.js';

const KEY = 'YAnz8cF6V2ZFrAkwYp1QJOMI2y0zEfS3PqNRQO/AjEg=';

function mech(parameters: Record<string, string>, type = 'WIREGUARD'): Mechanism {
  return create(MechanismSchema, { cls: 'REMOTE', type, parameters });
}

function rejects(t: ExecutionContext, fn: () => unknown, message: RegExp, title: string): void {
  const e = t.throws(fn, { instanceOf: AgentError, message }, title);
  t.is(e.code, 'INVALID_ARGUMENT', title);
}

test('readParam returns undefined for absent keys, also for inherited names', (t) => {
  const m = mech({ src_ip: '192.0.2.1' });
  t.is(readParam(m, 'src_ip'), '192.0.2.1');
  t.is(readParam(m, 'dst_ip'), undefined);
  t.is(readParam(m, 'toString'), undefined);
});

test('requireParam rejects missing and empty values, naming mechanism and key', (t) => {
  t.is(requireParam(mech({ a: 'x' }), 'a'), 'x');
  rejects(
    t,
    () => requireParam(mech({}), 'dst_public_key'),
    /WIREGUARD mechanism: parameter dst_public_key is missing/,
    'missing',
  );
  rejects(t, () => requireParam(mech({ a: '' }), 'a'), /parameter a is missing/, 'empty');
});

test('readPort accepts decimal 1..65535', (t) => {
  t.is(readPort(mech({ dst_port: '51820' }), 'dst_port'), 51820);
  t.is(readPort(mech({ dst_port: '1' }), 'dst_port'), 1);
  t.is(readPort(mech({ dst_port: '65535' }), 'dst_port'), 65535);
  t.is(readPort(mech({ dst_port: '0080' }), 'dst_port'), 80);
  t.is(readPort(mech({}), 'dst_port'), undefined);
});

test('readPort rejects anything that is not a plain decimal port', (t) => {
  for (const v of [
    '0',
    '65536',
    '',
    ' 80',
    '80 ',
    '+80',
    '-1',
    '8e1',
    '0x50',
    '80.0',
    'eighty',
    '99999999999',
  ]) {
    rejects(
      t,
      () => readPort(mech({ src_port: v }), 'src_port'),
      /parameter src_port is .*expected a decimal port 1\.\.65535/,
      v,
    );
  }
});

test('readMtu reads decimal MTUs and treats "0" as absent like upstream', (t) => {
  t.is(readMtu(mech({ MTU: '1420' })), 1420);
  t.is(readMtu(mech({ MTU: '0' })), undefined);
  t.is(readMtu(mech({})), undefined);
  for (const v of ['65536', '-1400', '1400.5', 'auto', '']) {
    rejects(t, () => readMtu(mech({ MTU: v })), /parameter MTU .*expected a decimal MTU/, v);
  }
});

test('readVni and readVlan enforce their bit widths', (t) => {
  t.is(readVni(mech({ vni: '0' }, 'VXLAN')), 0);
  t.is(readVni(mech({ vni: '16777215' }, 'VXLAN')), 16_777_215);
  rejects(t, () => readVni(mech({ vni: '16777216' }, 'VXLAN')), /VXLAN mechanism: parameter vni/, 'vni');
  t.is(readVlan(mech({ vlan: '4095' }, 'KERNEL')), 4095);
  rejects(t, () => readVlan(mech({ vlan: '4096' }, 'KERNEL')), /KERNEL mechanism: parameter vlan/, 'vlan');
});

test('readBool accepts what Go ParseBool accepts and nothing else', (t) => {
  for (const v of ['1', 't', 'T', 'true', 'TRUE', 'True']) t.true(readBool(mech({ b: v }), 'b'), v);
  for (const v of ['0', 'f', 'F', 'false', 'FALSE', 'False']) t.false(readBool(mech({ b: v }), 'b'), v);
  t.is(readBool(mech({}), 'b'), undefined);
  for (const v of ['yes', 'tRUE', '', ' true'])
    rejects(t, () => readBool(mech({ b: v }), 'b'), /"true" or "false"/, v);
});

test('readIp accepts bare IPv4 and IPv6 addresses only', (t) => {
  t.is(readIp(mech({ dst_ip: '192.0.2.2' }), 'dst_ip'), '192.0.2.2');
  t.is(readIp(mech({ dst_ip: 'fe80::1' }), 'dst_ip'), 'fe80::1');
  for (const v of ['192.0.2.2/32', 'host.example', '256.0.0.1', '']) {
    rejects(t, () => readIp(mech({ dst_ip: v }), 'dst_ip'), /parameter dst_ip/, v);
  }
});

test('readWireguardKey checks the key form', (t) => {
  t.is(readWireguardKey(mech({ dst_public_key: KEY }), 'dst_public_key'), KEY);
  rejects(
    t,
    () => readWireguardKey(mech({ dst_public_key: 'not-a-key' }), 'dst_public_key'),
    /dst_public_key/,
    'bad',
  );
});

test('error messages cut long garbage values', (t) => {
  const e = t.throws(() => readPort(mech({ src_port: 'x'.repeat(10_000) }), 'src_port'), {
    instanceOf: AgentError,
  });
  t.true(e.message.length < 400);
  t.deepEqual(e.details, { mechanism: 'WIREGUARD', parameter: 'src_port' });
});
