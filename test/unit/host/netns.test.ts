import test from 'ava';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';
import { Netns, netnsPath, parseNetnsList, parseNetnsRef, pidNetnsPath } from '../../../src/host/netns.js';

test('netns references: names, /var/run/netns and /run/netns paths, pids, file:// URLs', (t) => {
  t.deepEqual(parseNetnsRef('blue'), { kind: 'named', name: 'blue' });
  t.deepEqual(parseNetnsRef('/var/run/netns/blue'), { kind: 'named', name: 'blue' });
  t.deepEqual(parseNetnsRef('/run/netns/blue'), { kind: 'named', name: 'blue' });
  t.deepEqual(parseNetnsRef('file:///proc/42/ns/net'), { kind: 'pid', pid: 42 });
  t.deepEqual(parseNetnsRef('/proc/42/ns/net'), { kind: 'pid', pid: 42 });
  t.deepEqual(parseNetnsRef('/var/lib/cni/ns/x'), { kind: 'path', path: '/var/lib/cni/ns/x' });
  t.throws(() => parseNetnsRef('/var/lib/../etc/x'));
  t.throws(() => parseNetnsRef('bad name'));
  t.is(netnsPath({ kind: 'named', name: 'blue' }), '/var/run/netns/blue');
  t.is(netnsPath({ kind: 'pid', pid: 7 }), '/proc/7/ns/net');
  t.throws(() => pidNetnsPath(0));
});

test('ip -json netns list: empty output is no namespaces', (t) => {
  t.deepEqual(parseNetnsList(''), []);
  t.deepEqual(parseNetnsList('[{"name":"a"},{"name":"b","id":0}]\n'), ['a', 'b']);
});

test('create, ensure, delete (idempotent) and run: the transcript', async (t) => {
  const runner = new RecordingRunner()
    .once('ip -json netns list', { stdout: '[{"name":"h1"}]' })
    .on('ip netns del gone', {
      code: 1,
      stderr: 'Cannot remove namespace file "/run/netns/gone": No such file or directory',
    });
  const netns = new Netns(runner);
  await netns.ensure('h1');
  await netns.ensure('h2');
  await netns.delete('gone');
  await netns.run('h1', ['ping', '-c', '1', '10.0.0.2'], { timeoutMs: 5000 });
  t.deepEqual(runner.lines, [
    'ip -json netns list',
    'ip -json netns list',
    'ip netns add h2',
    'ip netns del gone',
    'ip netns exec h1 ping -c 1 10.0.0.2',
  ]);
});
