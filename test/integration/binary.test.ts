// The single binary as shipped: copied out of the checkout (so it cannot lean on node_modules or
// the source tree) and run as a user would. CI builds it first with `npm run build:binary`.
// Without dist/nsm-agent every test here fails, unless NSM_AGENT_SKIP_BINARY=1 says to skip them,
// which ava then reports as skipped: never a silent pass.
import { execFile } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { binaryAvailable, binaryTest, builtBinary, repoRoot } from '../helpers/binary.js';

const pkg = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string };
const built = builtBinary;
const available = binaryAvailable;

let workDir = '';
let binary = '';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

function run(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    // A bare environment and a neutral cwd: the binary must need neither.
    execFile(
      binary,
      args,
      { cwd: workDir, timeout: 30_000, env: { PATH: '/usr/bin:/bin' } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

if (available) {
  test.before(() => {
    workDir = mkdtempSync(join(tmpdir(), 'nsm-agent-binary-'));
    binary = join(workDir, 'nsm-agent');
    copyFileSync(built, binary);
    chmodSync(binary, 0o755);
  });
  test.after.always(() => {
    if (workDir !== '') rmSync(workDir, { recursive: true, force: true });
  });
}

binaryTest('binary: --version prints the package.json version', async (t) => {
  const r = await run(['--version']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `${pkg.version}\n`);
  t.is(r.stderr, '', 'no experimental-SEA warning or other noise');
});

binaryTest('binary: --help lists the subcommands', async (t) => {
  const r = await run(['--help']);
  t.is(r.code, 0, r.stderr);
  for (const name of [
    'run',
    'enroll',
    'status',
    'connect',
    'expose',
    'server',
    'token',
    'config',
    'version',
  ]) {
    t.regex(r.stdout, new RegExp(`^  ${name}\\b`, 'm'));
  }
});

binaryTest('binary: version --json says it is the single binary', async (t) => {
  const r = await run(['version', '--json']);
  t.is(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { version: string; singleBinary: boolean };
  t.is(info.version, pkg.version);
  t.true(info.singleBinary);
});

binaryTest(
  'binary: config validate on a bad file exits 1, names the field, leaves the file alone',
  async (t) => {
    const file = join(workDir, 'bad.json');
    const text = '{"wireguard": {"port": 70000, "backend": "kernal"}}';
    writeFileSync(file, text);
    const mtime = statSync(file).mtimeMs;
    const r = await run(['config', 'validate', '--config', file]);
    t.is(r.code, 1);
    t.regex(r.stderr, /wireguard\.port: must be <= 65535/);
    t.regex(r.stderr, /wireguard\.backend: .*did you mean "kernel"\?/);
    t.is(readFileSync(file, 'utf8'), text);
    t.is(statSync(file).mtimeMs, mtime);
  },
);

binaryTest('binary: config validate on a good file exits 0 (conf and Ajv work when bundled)', async (t) => {
  const file = join(workDir, 'good.json');
  writeFileSync(file, JSON.stringify({ exposes: [{ service: 'web', labels: { app: 'shop' } }] }));
  const r = await run(['config', 'validate', '--config', file]);
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout, `config OK: ${file}\n`);
});

binaryTest('binary: unknown command exits 2', async (t) => {
  const r = await run(['frobnicate']);
  t.is(r.code, 2);
  t.regex(r.stderr, /unknown command/);
});
