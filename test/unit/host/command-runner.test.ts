import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import {
  ProcessRunner,
  commandLabel,
  effectiveArgv,
  maxOutputBytes,
} from '../../../src/host/command-runner.js';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';

test('the process runner runs argv without a shell and passes stdin', async (t) => {
  const r = await new ProcessRunner().run(['sh', '-c', 'read x; echo "got $x $0"', 'a;b'], { input: 'hi\n' });
  t.deepEqual(r, { stdout: 'got hi a;b\n', stderr: '', code: 0 });
  const literal = await new ProcessRunner().run(['echo', '$(id)', ';', '|']);
  t.is(literal.stdout, '$(id) ; |\n');
});

test('runChecked names the command and its stderr, and says what to do', async (t) => {
  const e = await t.throwsAsync(
    new ProcessRunner().runChecked(['sh', '-c', 'echo boom >&2; exit 3', 'secret-arg']),
  );
  t.true(AgentError.is(e, 'EXEC_FAILED'));
  t.regex(e.message, /'sh -c echo boom >&2; exit 3' failed with exit code 3: boom/);
  t.notRegex(e.message, /secret-arg/);
});

test('a program that does not exist is EXEC_FAILED with an install hint', async (t) => {
  const e = await t.throwsAsync(new ProcessRunner().run(['/nonexistent/nsm-agent-tool']));
  t.true(AgentError.is(e, 'EXEC_FAILED'));
  t.regex(e.message, /install/);
});

test('the timeout kills the child by pid and reports it', async (t) => {
  const started = Date.now();
  const r = await new ProcessRunner().run(['sleep', '10'], { timeoutMs: 200 });
  t.true(Date.now() - started < 5_000);
  t.is(r.code, 137);
  t.regex(r.stderr, /killed: no answer within 200 ms/);
});

test('output is capped', async (t) => {
  const r = await new ProcessRunner().run(['head', '-c', String(maxOutputBytes + 4096), '/dev/zero']);
  t.true(r.stdout.length <= maxOutputBytes + 100);
  t.regex(r.stdout, /output cut at/);
});

test('an error names the command run inside a netns, not ip netns exec', (t) => {
  t.is(
    commandLabel(['ip', 'netns', 'exec', 'h1', 'wg', 'set', 'wg0', 'peer', 'X']),
    'wg set wg0 (in netns h1)',
  );
  t.is(
    commandLabel(['ip', '-n', 'h1', '-json', 'route', 'show', 'table', '100']),
    'ip route show (in netns h1)',
  );
  t.is(commandLabel(['ip', '-n', 'h1', '-force', '-batch', '-']), 'ip -batch - (in netns h1)');
});

test('netns execution is an ip netns exec prefix', (t) => {
  t.deepEqual(effectiveArgv(['ping', '-c1', '10.0.0.1'], 'h1'), [
    'ip',
    'netns',
    'exec',
    'h1',
    'ping',
    '-c1',
    '10.0.0.1',
  ]);
  t.deepEqual(effectiveArgv(['true']), ['true']);
  t.throws(() => effectiveArgv([]));
});

test('the recording runner records argv with netns prefix and input, and answers from its script', async (t) => {
  const runner = new RecordingRunner()
    .once('ip link show*', { code: 1, stderr: 'nope' })
    .on(/^ip link show/, { stdout: 'ok' })
    .on('wg show x', (call) => ({ stdout: call.argv.join(',') }));
  t.is((await runner.run(['ip', 'link', 'show'])).code, 1);
  t.is((await runner.run(['ip', 'link', 'show'])).stdout, 'ok');
  t.is((await runner.run(['wg', 'show', 'x'])).stdout, 'wg,show,x');
  await runner.run(['wg', 'set', 'x'], { netns: 'h1', input: 'KEY' });
  await t.throwsAsync(
    runner.runChecked(['false']).then(() => runner.on('false', { code: 1 }).runChecked(['false'])),
    {
      message: /'false' failed with exit code 1/,
    },
  );
  t.deepEqual(runner.transcript.slice(0, 4), [
    ['ip', 'link', 'show'],
    ['ip', 'link', 'show'],
    ['wg', 'show', 'x'],
    ['ip', 'netns', 'exec', 'h1', 'wg', 'set', 'x'],
  ]);
  t.is(runner.calls[3]?.input, 'KEY');
});
