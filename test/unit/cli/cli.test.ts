import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { cli } from './cli-harness.js';

const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as {
  version: string;
};

/** The subcommands the design names; --help must list every one. */
const subcommands = [
  'run',
  'enroll',
  'status',
  'connect',
  'disconnect',
  'expose',
  'unexpose',
  'services',
  'doctor',
  'server',
  'token',
  'hosts',
  'update',
  'config',
  'version',
];

function configFile(t: ExecutionContext, content: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-cli-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'config.json');
  writeFileSync(file, content);
  return file;
}

test('--version prints exactly the package.json version', async (t) => {
  const r = await cli(['--version']);
  t.is(r.code, 0);
  t.is(r.stdout, `${pkg.version}\n`);
  t.is(r.stderr, '');
});

test('-V is --version', async (t) => {
  t.is((await cli(['-V'])).stdout, `${pkg.version}\n`);
});

test('--help lists every subcommand and exits 0', async (t) => {
  const r = await cli(['--help']);
  t.is(r.code, 0);
  for (const name of subcommands) t.regex(r.stdout, new RegExp(`^  ${name}\\b`, 'm'), `--help lists ${name}`);
  t.regex(r.stdout, /--config <path>/);
  t.regex(r.stdout, /--log-level <level>/);
});

test('subcommand groups list their own subcommands', async (t) => {
  const expected: Record<string, readonly string[]> = {
    server: ['init', 'run', 'issue'],
    token: ['create', 'list', 'revoke'],
    hosts: ['list', 'revoke'],
    config: ['validate', 'show', 'schema'],
  };
  for (const [group, subs] of Object.entries(expected)) {
    const r = await cli([group, '--help']);
    t.is(r.code, 0);
    for (const s of subs) t.regex(r.stdout, new RegExp(`^  ${s}\\b`, 'm'), `${group} --help lists ${s}`);
  }
});

test('help <command> exits 0', async (t) => {
  const r = await cli(['help', 'config']);
  t.is(r.code, 0);
  t.regex(r.stdout, /validate/);
});

test('unknown command: exit 2, the message and a pointer to --help on stderr', async (t) => {
  const r = await cli(['frobnicate']);
  t.is(r.code, 2);
  t.is(r.stdout, '');
  t.regex(r.stderr, /unknown command 'frobnicate'/);
  t.regex(r.stderr, /nsm-agent --help/);
});

test('a near-miss command gets a suggestion', async (t) => {
  const r = await cli(['stauts']);
  t.is(r.code, 2);
  t.regex(r.stderr, /Did you mean status\?/);
});

test('unknown option: exit 2, pointing at the help of that command', async (t) => {
  const r = await cli(['config', 'validate', '--bogus']);
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown option '--bogus'/);
  t.regex(r.stderr, /nsm-agent config validate --help/);
});

test('missing argument and missing required option: exit 2', async (t) => {
  const connect = await cli(['connect']);
  t.is(connect.code, 2);
  t.regex(connect.stderr, /missing required argument 'service'/);
  const enroll = await cli(['enroll']);
  t.is(enroll.code, 2);
  t.regex(enroll.stderr, /--token/);
});

test('bad option values are usage errors: exit 2', async (t) => {
  t.is((await cli(['--log-level', 'loud', 'version'])).code, 2);
  t.is((await cli(['token', 'create', '--uses', 'many'])).code, 2);
  t.is((await cli(['connect', 'db', '--label', 'novalue'])).code, 2);
  t.is((await cli(['version', 'extra'])).code, 2);
});

test('no command at all: help on stderr, exit 2', async (t) => {
  const r = await cli([]);
  t.is(r.code, 2);
  t.regex(r.stderr, /Usage: nsm-agent/);
});

test('a group without its subcommand: exit 2', async (t) => {
  t.is((await cli(['config'])).code, 2);
});

const notYet: readonly (readonly string[])[] = [['update'], ['update', '--check']];
for (const argv of notYet) {
  test(`not built yet: '${argv.join(' ')}' says so and exits 1`, async (t) => {
    const r = await cli(argv);
    t.is(r.code, 1);
    t.is(r.stdout, '');
    t.regex(r.stderr, /is not available yet in nsm-agent \d+\.\d+\.\d+/);
    t.regex(r.stderr, /hint: this version implements: .*server init.*config validate/);
  });
}

test('config validate: a good file → exit 0 and "config OK: <path>"', async (t) => {
  const file = configFile(t, '{"wireguard": {"port": 51821}}');
  const r = await cli(['config', 'validate', '--config', file]);
  t.is(r.code, 0);
  t.is(r.stdout, `config OK: ${file}\n`);
  t.is(r.stderr, '');
});

test('config validate: a bad file → exit 1, field errors on stderr, file unchanged', async (t) => {
  const text = '{"wireguard": {"port": 70000}, "agnet": {}}';
  const file = configFile(t, text);
  const mtime = statSync(file).mtimeMs;
  const r = await cli(['config', 'validate', '--config', file]);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.regex(r.stderr, new RegExp(`error: config file ${file} is invalid \\(2 problems\\)`));
  t.regex(r.stderr, /wireguard\.port: must be <= 65535, got 70000/);
  t.regex(r.stderr, /agnet: unknown key; did you mean "agent"\?/);
  t.regex(r.stderr, /^hint: fix the file/m);
  t.is(readFileSync(file, 'utf8'), text);
  t.is(statSync(file).mtimeMs, mtime);
});

test('config validate: a missing file is not OK (usually a wrong --config path)', async (t) => {
  const r = await cli(['config', 'validate', '--config', '/nonexistent/nsm-agent/config.json']);
  t.is(r.code, 1);
  t.regex(r.stderr, /does not exist/);
});

test('config validate --json: machine-readable result for good and bad files', async (t) => {
  const good = configFile(t, '{}');
  const ok = await cli(['config', 'validate', '--json', '--config', good]);
  t.is(ok.code, 0);
  t.deepEqual(JSON.parse(ok.stdout), { ok: true, path: good, problems: [] });

  const bad = configFile(t, '{"log": {"level": "loud"}}');
  const r = await cli(['config', 'validate', '--json', '--config', bad]);
  t.is(r.code, 1);
  t.is(r.stderr, '');
  const parsed = JSON.parse(r.stdout) as { ok: boolean; problems: { path: string }[] };
  t.false(parsed.ok);
  t.deepEqual(
    parsed.problems.map((p) => p.path),
    ['log.level'],
  );
});

test('the config path: --config beats $NSM_AGENT_CONFIG beats the default', async (t) => {
  const fromEnv = configFile(t, '{}');
  const fromFlag = configFile(t, '{}');
  const env = { NSM_AGENT_CONFIG: fromEnv };
  t.is((await cli(['config', 'validate'], env)).stdout, `config OK: ${fromEnv}\n`);
  t.is((await cli(['config', 'validate', '--config', fromFlag], env)).stdout, `config OK: ${fromFlag}\n`);
  t.is((await cli(['--config', fromFlag, 'config', 'validate'], env)).stdout, `config OK: ${fromFlag}\n`);
  const dflt = await cli(['config', 'validate', '--json']);
  t.is((JSON.parse(dflt.stdout) as { path: string }).path, '/etc/nsm-agent/config.json');
});

test('config show --json: the effective config as JSON', async (t) => {
  const file = configFile(t, '{"wireguard": {"port": 51821}}');
  const r = await cli(['config', 'show', '--json', '--config', file]);
  t.is(r.code, 0);
  const config = JSON.parse(r.stdout) as { wireguard: { port: number; backend: string } };
  t.is(config.wireguard.port, 51821);
  t.is(config.wireguard.backend, 'auto');
});

test('config show: human output marks defaults', async (t) => {
  const file = configFile(t, '{"wireguard": {"port": 51821}}');
  const r = await cli(['config', 'show', '--config', file]);
  t.is(r.code, 0);
  t.regex(r.stdout, /^wireguard\.port += 51821$/m);
  t.regex(r.stdout, /^wireguard\.backend += "auto" {2}\(default\)$/m);
});

test('config show on an invalid file fails like validate', async (t) => {
  const file = configFile(t, '{"wireguard": 1}');
  const r = await cli(['config', 'show', '--config', file]);
  t.is(r.code, 1);
  t.regex(r.stderr, /wireguard: must be an object, got an integer/);
});

test('config schema prints the JSON schema', async (t) => {
  const r = await cli(['config', 'schema']);
  t.is(r.code, 0);
  const schema = JSON.parse(r.stdout) as { type: string; additionalProperties: boolean; properties: object };
  t.is(schema.type, 'object');
  t.false(schema.additionalProperties);
  t.deepEqual(Object.keys(schema.properties), [
    '$schema',
    'mesh',
    'agent',
    'wireguard',
    'connects',
    'exposes',
    'update',
    'log',
  ]);
});

test('version: human and --json', async (t) => {
  const human = await cli(['version']);
  t.is(human.code, 0);
  t.regex(human.stdout, new RegExp(`^nsm-agent ${pkg.version.replace(/\./g, '\\.')}$`, 'm'));
  const r = await cli(['version', '--json']);
  t.is(r.code, 0);
  t.deepEqual(JSON.parse(r.stdout), {
    version: pkg.version,
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    singleBinary: false,
  });
});

test('commands that act need the runtime: the bare CLI says so instead of pretending', async (t) => {
  const r = await cli(['token', 'list', '--data-dir', '/nonexistent']);
  t.is(r.code, 1);
  t.regex(r.stderr, /needs the nsm-agent runtime/);
});

test('duration options: --ttl takes 10m/1h/7d; anything else is a usage error', async (t) => {
  const r = await cli(['token', 'create', '--ttl', 'forever']);
  t.is(r.code, 2);
  t.regex(r.stderr, /expected a duration like 10m, 1h or 7d, got 'forever'/);
  const bad = await cli(['token', 'create', '--label', 'novalue']);
  t.is(bad.code, 2);
});
