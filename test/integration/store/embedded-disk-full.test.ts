// A full disk: the embedded store fails the write with UNAVAILABLE and a next step, stops accepting
// changes (memory may be ahead of the disk), and after space is freed it reopens with every
// acknowledged write. Needs root for a private mount namespace with a small tmpfs.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';

const script = fileURLToPath(new URL('./embedded-disk-full.ts', import.meta.url));
const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/unshare');

interface Report {
  readonly acked: number;
  readonly first?: { readonly code: string; readonly message: string };
  readonly second: string;
  readonly keys: number;
}

function runChild(dir: string): Promise<Report> {
  return new Promise((resolve, reject) => {
    // The tmpfs exists only in the child's mount namespace and disappears with it.
    const child = spawn(
      '/usr/bin/unshare',
      [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        'mount -t tmpfs -o size=8m nsm-store-test "$0" && exec "$1" --import tsx "$2" "$0"',
        dir,
        process.execPath,
        script,
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    let err = '';
    const guard = setTimeout(() => {
      if (child.pid !== undefined) process.kill(child.pid, 'SIGKILL');
    }, 60_000);
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(guard);
      if (code !== 0) reject(new Error(`disk-full child exited ${code}: ${err}`));
      else resolve(JSON.parse(out.trim().split('\n').at(-1) ?? '{}') as Report);
    });
  });
}

(canRun ? test : test.skip)(
  'a full disk fails writes with UNAVAILABLE and loses nothing acknowledged',
  async (t) => {
    const dir = mkdtempSync(join(tmpdir(), 'nsm-disk-full-'));
    try {
      const r = await runChild(dir);
      t.log(r);
      t.true(r.acked > 10, 'some writes fit');
      t.is(r.first?.code, 'UNAVAILABLE');
      t.regex(r.first?.message ?? '', /could not write its log/);
      t.regex(r.first?.message ?? '', /fix the disk/);
      t.is(r.second, 'UNAVAILABLE', 'the store refuses changes after a failed write');
      t.is(r.keys, r.acked, 'every acknowledged write is there after reopening');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
);
