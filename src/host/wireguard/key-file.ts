import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { WireGuardKey } from './keys.js';

/**
 * Runs `fn` with the key in a file only root can read (a fresh 0700 directory, a 0600 file), and
 * removes both afterwards, whatever happens. `wg set … private-key <file>` needs a path: argv is
 * world-readable, and `/dev/stdin` does not work because Node gives a child a socket, not a pipe,
 * as stdin, which `wg` cannot fopen (ENXIO).
 */
export async function withKeyFile<T>(
  key: WireGuardKey,
  fn: (path: string) => Promise<T>,
  dir = tmpdir(),
): Promise<T> {
  const d = await mkdtemp(join(dir, 'nsm-wg-'));
  try {
    const path = join(d, 'private.key');
    await writeFile(path, `${key}\n`, { mode: 0o600, flag: 'wx' });
    return await fn(path);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
}
