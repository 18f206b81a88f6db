import test from 'ava';
import {
  bindAddress,
  dialTarget,
  formatGrpcUrl,
  isLocalOnly,
  parseGrpcUrl,
} from '../../../src/api/grpc/index.js';
import { AgentError } from '../../../src/errors/index.js';

test('unix:///abs/path parses to a socket path and round-trips', (t) => {
  const u = parseGrpcUrl('unix:///run/nsm-agent/nsm.sock');
  t.deepEqual(u, { kind: 'unix', path: '/run/nsm-agent/nsm.sock' });
  t.is(formatGrpcUrl(u), 'unix:///run/nsm-agent/nsm.sock');
  t.is(bindAddress(u), 'unix:///run/nsm-agent/nsm.sock');
  t.is(dialTarget(u), 'unix:///run/nsm-agent/nsm.sock');
  t.true(isLocalOnly(u));
});

test('tcp forms: host:port, :port (all interfaces), [::1]:port', (t) => {
  const named = parseGrpcUrl('tcp://registry.mesh.example:5002');
  t.deepEqual(named, { kind: 'tcp', host: 'registry.mesh.example', port: 5002 });
  t.is(dialTarget(named), 'dns:registry.mesh.example:5002');
  t.false(isLocalOnly(named));

  const any = parseGrpcUrl('tcp://:5001');
  t.deepEqual(any, { kind: 'tcp', host: '', port: 5001 });
  t.is(bindAddress(any), '[::]:5001');
  t.is(formatGrpcUrl(any), 'tcp://:5001');

  const v6 = parseGrpcUrl('tcp://[::1]:5001');
  t.deepEqual(v6, { kind: 'tcp', host: '::1', port: 5001 });
  t.is(bindAddress(v6), '[::1]:5001');
  t.is(dialTarget(v6), 'dns:[::1]:5001');
  t.true(isLocalOnly(v6));

  const v4 = parseGrpcUrl('tcp://127.0.0.1:0');
  t.is(bindAddress(v4), '127.0.0.1:0');
  t.true(isLocalOnly(v4));
  t.false(isLocalOnly(parseGrpcUrl('tcp://10.0.0.1:5001')));
});

test('anything else is CONFIG_INVALID and names the accepted forms', (t) => {
  const bad = [
    'unix://relative/path',
    'unix:relative',
    'unix:///run/x.sock?mode=1',
    'unix:///run/dir/',
    `unix:///${'a'.repeat(120)}`,
    'tcp://host',
    'tcp://host:99999',
    'tcp://::1:5001',
    'tcp://[not-v6]:5001',
    'tcp://user@host:5001',
    'tcp://host:5001/path',
    'tcp://bad_host!:5001',
    'http://host:5001',
    'host:5001',
    '',
  ];
  for (const url of bad) {
    const e = t.throws(() => parseGrpcUrl(url), { instanceOf: AgentError }, url);
    t.is(e.code, 'CONFIG_INVALID', url);
    t.regex(e.message, /accepted forms: unix:\/\/\/absolute\/path, tcp:\/\/host:port, tcp:\/\/:port/, url);
  }
});

test('all-interfaces and port 0 can be listened on but not dialed', (t) => {
  t.throws(() => dialTarget(parseGrpcUrl('tcp://:5001')), { message: /all interfaces/ });
  t.throws(() => dialTarget(parseGrpcUrl('tcp://127.0.0.1:0')), { message: /port 0/ });
});
