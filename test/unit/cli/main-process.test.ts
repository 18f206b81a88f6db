// The real entry point in a child process: what a user's shell sees (exit codes, stdout vs stderr).
// Slower than the in-process tests in cli.test.ts, so only the essentials run here.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const root = fileURLToPath(new URL('../../../', import.meta.url));
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as { version: string };

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function main(args: readonly string[], env: Readonly<Record<string, string>> = {}): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--import', 'tsx', 'src/main.ts', ...args],
      { cwd: root, timeout: 30_000, env: { PATH: process.env.PATH ?? '', ...env } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

test('--version', async (t) => {
  const r = await main(['--version']);
  t.is(r.code, 0);
  t.is(r.stdout, `${pkg.version}\n`);
});

test('--help lists subcommands', async (t) => {
  const r = await main(['--help']);
  t.is(r.code, 0);
  t.regex(r.stdout, /^ {2}run\b/m);
  t.regex(r.stdout, /^ {2}config\b/m);
});

test('unknown command exits 2', async (t) => {
  const r = await main(['frobnicate']);
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown command 'frobnicate'/);
});

test('not-yet-available command exits 1', async (t) => {
  const r = await main(['update']);
  t.is(r.code, 1);
  t.regex(r.stderr, /not available yet/);
});

test('config validate: exit 0 for a good file, 1 for a bad one; NSM_AGENT_CONFIG is honoured', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-main-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const good = join(dir, 'good.json');
  const bad = join(dir, 'bad.json');
  writeFileSync(good, '{}');
  writeFileSync(bad, '{"wireguard": {"port": "x"}}');
  const ok = await main(['config', 'validate'], { NSM_AGENT_CONFIG: good });
  t.is(ok.code, 0);
  t.is(ok.stdout, `config OK: ${good}\n`);
  const r = await main(['config', 'validate', '--config', bad]);
  t.is(r.code, 1);
  t.regex(r.stderr, /wireguard\.port/);
});

test('--json output parses as JSON', async (t) => {
  const r = await main(['version', '--json']);
  t.is(r.code, 0);
  t.is((JSON.parse(r.stdout) as { version: string }).version, pkg.version);
});

test('a closed stdout pipe is not a crash', async (t) => {
  // `nsm-agent config schema | true`: the reader is gone before the first write, so that write
  // fails with EPIPE, which must end the process quietly instead of with a stack trace.
  const r = await new Promise<Run>((resolve) => {
    execFile(
      '/bin/sh',
      ['-c', `"${process.execPath}" --import tsx src/main.ts config schema | true`],
      { cwd: root, timeout: 30_000 },
      (error, stdout, stderr) => {
        resolve({ code: error === null ? 0 : 1, stdout, stderr });
      },
    );
  });
  t.is(r.code, 0);
  t.notRegex(r.stderr, /EPIPE|Error/);
});
