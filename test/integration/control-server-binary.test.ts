// Issue B acceptance, as an operator and a host would do it with the shipped binary: `server init`,
// `server run`, `token create`, `enroll --token`, a second use of a one-time token refused with a
// message saying it was used, `hosts list` showing the host; then SIGTERM stops the server cleanly.
// Loopback only; the server process is stopped by its pid on every exit path.
import { execFile, spawn } from 'node:child_process';
import { copyFileSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect } from 'node:tls';
import test from 'ava';
import { binaryAvailable, binaryTest, builtBinary } from '../helpers/binary.js';
import { freePort, waitForOutput } from '../helpers/child-process.js';

interface Run {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

let dir = '';
let binary = '';

function run(args: readonly string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(
      binary,
      args,
      { cwd: dir, timeout: 30_000, env: { PATH: '/usr/bin:/bin' } },
      (error, stdout, stderr) => {
        const code = error === null ? 0 : typeof error.code === 'number' ? error.code : null;
        resolve({ code, stdout, stderr });
      },
    );
  });
}

if (binaryAvailable) {
  test.before(() => {
    dir = mkdtempSync(join(tmpdir(), 'nsm-agent-cs-'));
    binary = join(dir, 'nsm-agent');
    copyFileSync(builtBinary, binary);
  });
  test.after.always(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });
}

binaryTest(
  'control server: init, run, token, enroll, one-time token reuse refused, hosts list',
  async (t) => {
    const data = join(dir, 'server');
    const init = await run(['server', 'init', '--trust-domain', 'mesh.test', '--data-dir', data]);
    t.is(init.code, 0, init.stderr);
    t.regex(init.stdout, /spiffe:\/\/mesh\.test\/server/);
    const again = await run(['server', 'init', '--trust-domain', 'mesh.test', '--data-dir', data]);
    t.is(again.code, 1, 'a second init must not replace the CA');

    const port = await freePort();
    const url = `tcp://127.0.0.1:${port}`;
    const server = spawn(
      binary,
      ['server', 'run', '--data-dir', data, '--listen', url, '--public-url', url],
      {
        cwd: dir,
        env: { PATH: '/usr/bin:/bin' },
        stdio: ['ignore', 'ignore', 'pipe'],
      },
    );
    t.teardown(() => {
      if (server.exitCode === null) server.kill('SIGKILL');
    });
    await waitForOutput(server, 'control server listening', 20_000);

    // TLS 1.3 only: a TLS 1.2 client is refused in the handshake; a 1.3 client gets the server SVID.
    const handshake = (maxVersion: 'TLSv1.2' | 'TLSv1.3'): Promise<string> =>
      new Promise((resolve) => {
        const s = connect({
          host: '127.0.0.1',
          port,
          servername: 'nsm-agent.invalid',
          maxVersion,
          rejectUnauthorized: false,
        });
        s.setTimeout(5_000, () => s.destroy(new Error('timeout')));
        s.once('secureConnect', () => {
          const v = s.getProtocol() ?? 'none';
          s.destroy();
          resolve(v);
        });
        s.once('error', (e: NodeJS.ErrnoException) => resolve(`refused: ${e.code ?? e.message}`));
      });
    t.regex(await handshake('TLSv1.2'), /^refused: /, 'TLS 1.2 is refused');
    t.is(await handshake('TLSv1.3'), 'TLSv1.3');

    const created = await run(['token', 'create', '--data-dir', data, '--label', 'env=test']);
    t.is(created.code, 0, created.stderr);
    const token = created.stdout.trim();
    t.regex(token, /^nsmagent1_\S+$/, 'stdout is the token alone');

    // The token from a file (not argv, where other users could read it in the process list).
    const tokenFile = join(dir, 'token');
    writeFileSync(tokenFile, `${token}\n`, { mode: 0o600 });
    const first = await run([
      'enroll',
      '--token-file',
      tokenFile,
      '--state-dir',
      join(dir, 'host-a'),
      '--json',
    ]);
    t.is(first.code, 0, first.stderr);
    const enrolled = JSON.parse(first.stdout) as { spiffeId: string; trustDomain: string };
    t.regex(enrolled.spiffeId, /^spiffe:\/\/mesh\.test\/agent\/[\w-]+$/);
    t.is(statSync(join(dir, 'host-a', 'identity', 'svid.key')).mode & 0o777, 0o600);

    const second = await run(['enroll', '--token', token, '--state-dir', join(dir, 'host-b')]);
    t.is(second.code, 1);
    t.regex(second.stderr, /has already been used/);

    const hosts = await run(['hosts', 'list', '--data-dir', data, '--json']);
    t.is(hosts.code, 0, hosts.stderr);
    const rows = JSON.parse(hosts.stdout) as {
      spiffeId: string;
      state: string;
      labels: Record<string, string>;
    }[];
    t.is(rows.length, 1);
    t.like(rows[0], { spiffeId: enrolled.spiffeId, state: 'active' });
    t.is(rows[0]?.labels.env, 'test');

    const exited = new Promise<number | null>((resolve) => server.once('exit', (code) => resolve(code)));
    server.kill('SIGTERM');
    t.is(await exited, 0, 'SIGTERM stops the server cleanly');

    const down = await run(['token', 'list', '--data-dir', data]);
    t.is(down.code, 1);
    t.regex(down.stderr, /no control server answers[\s\S]*start it with: nsm-agent server run/);
  },
);
