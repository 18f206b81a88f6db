import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from 'node:fs';
import { spawnSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { ConfigInvalidError, loadConfig } from '../../../src/config/index.js';

const hostname = (): string => 'test-host';

const repoRoot = fileURLToPath(new URL('../../../', import.meta.url));

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-config-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  return dir;
}

interface Snapshot {
  readonly bytes: Buffer;
  readonly mtimeMs: number;
  readonly mode: number;
  readonly siblings: readonly string[];
}

function snapshot(file: string, dir: string): Snapshot {
  const st = statSync(file);
  return { bytes: readFileSync(file), mtimeMs: st.mtimeMs, mode: st.mode, siblings: readdirSync(dir).sort() };
}

/** Writes `text`, loads it expecting CONFIG_INVALID, and checks the file and its directory are untouched. */
async function expectInvalid(
  t: ExecutionContext,
  text: string,
  name = 'config.json',
): Promise<ConfigInvalidError> {
  const dir = tempDir(t);
  const file = join(dir, name);
  writeFileSync(file, text);
  const before = snapshot(file, dir);
  const e = await t.throwsAsync(loadConfig(file, { hostname }), { instanceOf: ConfigInvalidError });
  t.true(AgentError.is(e, 'CONFIG_INVALID'));
  const after = snapshot(file, dir);
  t.deepEqual(after.bytes, before.bytes, 'file content unchanged');
  t.is(after.mtimeMs, before.mtimeMs, 'file mtime unchanged');
  t.is(after.mode, before.mode, 'file mode unchanged');
  t.deepEqual(after.siblings, before.siblings, 'no file created or removed next to it');
  t.true(e.message.includes(file), 'message names the file');
  t.true(e.hint?.includes(`nsm-agent config validate --config ${file}`), 'hint says how to check the fix');
  return e;
}

test('a missing file gives the defaults and creates nothing, not even its directory', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'not', 'there', 'config.json');
  const loaded = await loadConfig(file, { hostname });
  t.false(loaded.exists);
  t.deepEqual(loaded.file, {});
  t.deepEqual(loaded.config, {
    mesh: {},
    agent: {
      name: 'test-host',
      listen: {
        nsm: 'unix:///run/nsm-agent/nsm.sock',
        remote: 'tcp://:5001',
        api: 'unix:///run/nsm-agent/api.sock',
        metrics: '127.0.0.1:9464',
      },
      stateDir: '/var/lib/nsm-agent',
      runDir: '/run/nsm-agent',
      liveness: { intervalMs: 1000, misses: 3 },
    },
    wireguard: { port: 51820, interface: 'nsm-wg0', backend: 'auto' },
    connects: [],
    exposes: [],
    update: { channel: 'stable' },
    log: { level: 'info' },
  });
  t.deepEqual(readdirSync(dir), []);
});

test('a good file is read as written, defaults fill the rest, and the file is not rewritten', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'config.json');
  const text = JSON.stringify({
    mesh: { server: 'tcp://mesh.example:5002', trustDomain: 'mesh.example' },
    agent: { runDir: '/run/agent-b' },
    wireguard: { port: 51821 },
    connects: [{ service: 'db-net', netns: 'blue' }],
    exposes: [{ service: 'payments', allow: ['spiffe://mesh.example/agent/*'] }],
    update: { pin: '1.2.3' },
    log: { level: 'debug' },
  });
  writeFileSync(file, text);
  const before = snapshot(file, dir);
  const { config, exists } = await loadConfig(file, { hostname });
  t.true(exists);
  t.is(config.mesh.server, 'tcp://mesh.example:5002');
  t.is(config.wireguard.port, 51821);
  t.is(config.wireguard.backend, 'auto');
  t.deepEqual(config.connects, [{ service: 'db-net', netns: 'blue', labels: {} }]);
  t.deepEqual(config.exposes, [
    { service: 'payments', cidr: '169.254.0.0/16', labels: {}, allow: ['spiffe://mesh.example/agent/*'] },
  ]);
  t.deepEqual(config.update, { channel: 'stable', pin: '1.2.3' });
  t.is(config.log.level, 'debug');
  // The sockets follow runDir unless set explicitly, so two agents on one test bed do not collide.
  t.is(config.agent.listen.nsm, 'unix:///run/agent-b/nsm.sock');
  t.is(config.agent.listen.api, 'unix:///run/agent-b/api.sock');
  t.deepEqual(snapshot(file, dir), before);
});

test('a file name without .json works too', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'agent.conf');
  writeFileSync(file, '{"wireguard":{"port":1}}');
  t.is((await loadConfig(file, { hostname })).config.wireguard.port, 1);
});

test('a relative path is resolved against the working directory', async (t) => {
  const loaded = await loadConfig('no-such-dir-for-nsm-agent-test/config.json', { hostname });
  t.is(loaded.path, join(process.cwd(), 'no-such-dir-for-nsm-agent-test/config.json'));
});

test('bad JSON: line, column and a fix for a trailing comma', async (t) => {
  const e = await expectInvalid(t, '{\n  "wireguard": {"port": 1,}\n}\n');
  t.regex(e.message, /not valid JSON/);
  t.regex(e.message, /line 2, column 27/);
  t.regex(e.message, /trailing comma/);
});

test('bad JSON: a missing comma between lines', async (t) => {
  const e = await expectInvalid(t, '{\n  "wireguard": {"port": 1}\n  "log": {}\n}\n');
  t.regex(e.message, /line 3, column 3/);
  t.regex(e.message, /comma is probably missing/);
});

test('bad JSON: comments are named as the problem', async (t) => {
  const e = await expectInvalid(t, '{\n  // the port\n  "wireguard": {}\n}\n');
  t.regex(e.message, /no comments/);
});

test('an empty file is invalid, with the way to get defaults', async (t) => {
  const e = await expectInvalid(t, '');
  t.regex(e.message, /is empty/);
  t.regex(e.message, /write \{\}/);
});

test('wrong type: names the field, what was expected and what was found', async (t) => {
  const e = await expectInvalid(t, '{"wireguard": {"port": "51820"}}');
  t.deepEqual(e.problems, [
    {
      path: 'wireguard.port',
      problem: 'must be an integer, got a string ("51820")',
      expected: 'UDP port WireGuard listens on, an integer from 1 to 65535',
      fix: 'write the number without quotes: 51820',
    },
  ]);
  t.regex(e.message, /wireguard\.port: must be an integer/);
});

test('out of range', async (t) => {
  const e = await expectInvalid(t, '{"wireguard": {"port": 70000}}');
  t.is(e.problems[0]?.path, 'wireguard.port');
  t.regex(e.message, /wireguard\.port: must be <= 65535, got 70000/);
});

test('unknown key: suggests the closest known key', async (t) => {
  const e = await expectInvalid(t, '{"agnet": {}, "wireguard": {"prot": 1}, "mesh": {"trustdomain": "x"}}');
  const byPath = Object.fromEntries(e.problems.map((p) => [p.path, `${p.problem}; ${p.fix ?? ''}`]));
  t.deepEqual(byPath, {
    agnet: 'unknown key; did you mean "agent"?',
    'wireguard.prot': 'unknown key; did you mean "port"?',
    'mesh.trustdomain': 'unknown key; did you mean "trustDomain"?',
  });
  t.regex(e.message, /agnet: unknown key; did you mean "agent"\?/);
});

test('unknown key at the wrong level: says where it belongs', async (t) => {
  const e = await expectInvalid(t, '{"port": 51820}');
  t.is(e.problems[0]?.fix, 'did you mean to put it in wireguard?');
});

test('unknown key with no near match: lists the allowed keys', async (t) => {
  const e = await expectInvalid(t, '{"update": {"frobnicate": true}}');
  t.is(e.problems[0]?.path, 'update.frobnicate');
  t.is(e.problems[0]?.fix, 'allowed keys in update: channel, pin');
});

test('unknown key inside an array item', async (t) => {
  const e = await expectInvalid(t, '{"exposes": [{"service": "web", "cdir": "10.0.0.0/8"}]}');
  t.is(e.problems[0]?.path, 'exposes[0].cdir');
  t.is(e.problems[0]?.fix, 'did you mean "cidr"?');
});

test('bad enum value: lists the allowed values and the likely one', async (t) => {
  const e = await expectInvalid(t, '{"wireguard": {"backend": "kernal"}}');
  t.deepEqual(e.problems, [
    {
      path: 'wireguard.backend',
      problem: 'must be one of "auto", "kernel", "userspace", got "kernal"',
      fix: 'did you mean "kernel"?',
    },
  ]);
});

test('pattern mismatch shows the description, not the regex', async (t) => {
  const e = await expectInvalid(t, '{"mesh": {"server": "http://mesh.example"}}');
  t.is(e.problems[0]?.path, 'mesh.server');
  t.is(e.problems[0]?.problem, '"http://mesh.example" is not valid');
  t.regex(e.problems[0]?.expected ?? '', /tcp:\/\/host:port/);
  t.notRegex(e.message, /\^tcp/);
});

test('missing required key in an array item', async (t) => {
  const e = await expectInvalid(t, '{"connects": [{"netns": "blue"}]}');
  t.is(e.problems[0]?.path, 'connects[0].service');
  t.is(e.problems[0]?.problem, 'is required but missing');
});

test('bad label key names the key', async (t) => {
  const e = await expectInvalid(t, '{"connects": [{"service": "db", "labels": {"bad key": "v"}}]}');
  t.deepEqual(
    e.problems.map((p) => p.path),
    ['connects[0].labels["bad key"]'],
  );
});

test('the top level must be an object', async (t) => {
  const e = await expectInvalid(t, '[]');
  t.is(e.problems[0]?.path, '');
  t.regex(e.message, /must be an object, got an array/);
});

test('every problem in the file is reported at once', async (t) => {
  const e = await expectInvalid(
    t,
    '{"wireguard": {"port": 0, "backend": "x"}, "log": {"level": "loud"}, "extra": 1}',
  );
  t.deepEqual(e.problems.map((p) => p.path).sort(), [
    'extra',
    'log.level',
    'wireguard.backend',
    'wireguard.port',
  ]);
  t.regex(e.message, /\(4 problems\)/);
});

test('a service exposed twice is invalid', async (t) => {
  const e = await expectInvalid(
    t,
    '{"exposes": [{"service": "db"}, {"service": "db", "cidr": "10.0.0.0/8"}]}',
  );
  t.is(e.problems[0]?.path, 'exposes[1].service');
  t.regex(e.message, /already exposed by exposes\[0\]/);
});

test('a liveness interval under 100 ms is invalid and says how to turn the check off', async (t) => {
  const e = await expectInvalid(t, '{"agent": {"liveness": {"intervalMs": 20}}}');
  t.is(e.problems[0]?.path, 'agent.liveness.intervalMs');
  t.regex(e.message, /20 ms is too short/);
  t.regex(e.message, /0 to turn the liveness check off/);
});

test('a liveness interval of 0 turns the check off and is valid', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'config.json');
  writeFileSync(file, '{"agent": {"liveness": {"intervalMs": 0}}}');
  const loaded = await loadConfig(file, { hostname });
  t.deepEqual(loaded.config.agent.liveness, { intervalMs: 0, misses: 3 });
});

test('a directory is not a config file', async (t) => {
  const dir = tempDir(t);
  mkdirSync(join(dir, 'config.json'));
  const e = await t.throwsAsync(loadConfig(join(dir, 'config.json'), { hostname }));
  t.true(AgentError.is(e, 'CONFIG_INVALID'));
  t.regex(e.message, /is a directory/);
});

const isRoot = process.getuid?.() === 0;
test('an unreadable file is PERMISSION_DENIED, not CONFIG_INVALID', async (t) => {
  const dir = tempDir(t);
  chmodSync(dir, 0o755);
  const file = join(dir, 'config.json');
  writeFileSync(file, '{}');
  chmodSync(file, 0o000);
  if (!isRoot) {
    const e = await t.throwsAsync(loadConfig(file, { hostname }));
    t.true(AgentError.is(e, 'PERMISSION_DENIED'));
    return;
  }
  // Root reads any file, so load it as an unprivileged user in a child process.
  const probe = join(dir, 'probe.mjs');
  const configModule = pathToFileURL(join(repoRoot, 'src', 'config', 'index.ts')).href;
  writeFileSync(
    probe,
    `const { loadConfig } = await import(${JSON.stringify(configModule)});\n` +
      `try { await loadConfig(${JSON.stringify(file)}, { hostname: () => 'h' }); console.log('LOADED'); }\n` +
      `catch (e) { console.log(e.code); }\n`,
  );
  chmodSync(probe, 0o644);
  const r = spawnSync(process.execPath, ['--import', 'tsx', probe], {
    uid: 65534,
    gid: 65534,
    cwd: repoRoot,
    encoding: 'utf8',
    timeout: 60_000,
  });
  t.is(r.stdout.trim(), 'PERMISSION_DENIED', r.stderr);
});

// Serial tests run first, so this one is the first to load conf in this worker process.
test.serial('loading config leaves process signal handling alone (no listener is added)', async (t) => {
  const dir = tempDir(t);
  const file = join(dir, 'config.json');
  writeFileSync(file, '{}');
  const signals = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR2', 'SIGQUIT'] as const;
  const before = signals.map((s) => process.listenerCount(s));
  await loadConfig(file, { hostname });
  t.deepEqual(
    signals.map((s) => process.listenerCount(s)),
    before,
  );
});
