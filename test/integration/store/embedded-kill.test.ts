// Issue B §4: `kill -9` at any instant loses nothing that was acknowledged. A child process writes
// into the embedded store and prints every acknowledged key; we SIGKILL it at random moments, reopen
// the store here and check every acknowledged key is there with its value.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { EmbeddedStore } from '../../../src/store/index.js';
import { valueFor } from './writer-values.js';

const script = fileURLToPath(new URL('./embedded-writer.ts', import.meta.url));

interface Round {
  readonly acked: string[];
  readonly signal: NodeJS.Signals | null;
}

/** Runs the writer until `killAfterMs` after it is ready, then SIGKILLs it; bounded by 30 s. */
function runAndKill(dir: string, prefix: string, killAfterMs: number): Promise<Round> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', script, dir, prefix], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const acked: string[] = [];
    let partial = '';
    let stderr = '';
    let killTimer: NodeJS.Timeout | undefined;
    const guard = setTimeout(() => child.kill('SIGKILL'), 30_000);
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdout.on('data', (d: Buffer) => {
      const lines = (partial + d.toString()).split('\n');
      partial = lines.pop() ?? '';
      for (const l of lines) {
        if (l === 'ready') killTimer = setTimeout(() => child.kill('SIGKILL'), killAfterMs);
        else if (l.startsWith('ack ')) acked.push(l.slice(4));
      }
    });
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(guard);
      clearTimeout(killTimer);
      if (signal !== 'SIGKILL') reject(new Error(`writer exited ${code}: ${stderr}`));
      else resolve({ acked, signal });
    });
  });
}

test('kill -9 at random moments loses no acknowledged write', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-kill9-'));
  try {
    const all: string[] = [];
    for (let round = 0; round < 6; round++) {
      const killAfter = 20 + Math.floor(Math.random() * 600);
      const { acked } = await runAndKill(dir, `/r${round}/`, killAfter);
      all.push(...acked);
      const store = await EmbeddedStore.open({ dir });
      try {
        const missing: string[] = [];
        for (const key of all) {
          const e = await store.get(key);
          if (!e || !Buffer.from(e.value).equals(Buffer.from(valueFor(key)))) missing.push(key);
        }
        t.deepEqual(missing, [], `round ${round}: killed after ${killAfter} ms, ${acked.length} acks`);
        t.log(`round ${round}: killed ${killAfter} ms after ready, ${acked.length} acknowledged`);
      } finally {
        await store.close();
      }
    }
    t.true(all.length > 0, 'the writer acknowledged something');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
