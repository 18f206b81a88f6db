import { link, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError } from '../../errors/index.js';

export const LOCK_FILE = 'lock';

export interface DirLock {
  release(): Promise<void>;
}

/**
 * Makes sure one process at a time opens a data directory. The lock file holds the owner's pid and
 * appears atomically (written aside, then hard-linked into place, which fails if it exists), so a
 * reader never sees a half-written lock. A lock whose pid is no longer running is stale (its owner
 * was killed) and is taken over. Two processes taking over the same stale lock in the same
 * microseconds could both win; the window is small and needs a crash first.
 */
export async function acquireDirLock(dir: string): Promise<DirLock> {
  const path = join(dir, LOCK_FILE);
  const mine = join(dir, `${LOCK_FILE}.${process.pid}.tmp`);
  await removeStaleTemps(dir);
  await writeFile(mine, `${process.pid}\n`, { mode: 0o600 });
  try {
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        await link(mine, path);
        return {
          release: async () => {
            if ((await readPid(path)) === process.pid) await unlink(path).catch(() => undefined);
          },
        };
      } catch (e: unknown) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
      const owner = await readPid(path);
      if (owner !== undefined && isRunning(owner)) {
        throw new AgentError(
          'FAILED_PRECONDITION',
          `the store in ${dir} is in use by process ${owner}${owner === process.pid ? ' (this process)' : ''}`,
          {
            hint: `stop that process first; if no nsm-agent server is running, delete ${path}`,
            details: { dir, pid: owner },
          },
        );
      }
      await unlink(path).catch(() => undefined);
    }
    throw new AgentError('UNAVAILABLE', `could not take the lock ${path}: another process keeps taking it`, {
      hint: 'make sure only one nsm-agent server uses this data directory',
    });
  } finally {
    await unlink(mine).catch(() => undefined);
  }
}

/** Lock files written aside by processes that died before linking them into place. */
async function removeStaleTemps(dir: string): Promise<void> {
  for (const name of await readdir(dir)) {
    const m = /^lock\.(\d+)\.tmp$/.exec(name);
    if (m?.[1] && !isRunning(Number(m[1]))) await unlink(join(dir, name)).catch(() => undefined);
  }
}

async function readPid(path: string): Promise<number | undefined> {
  try {
    const pid = Number.parseInt((await readFile(path, 'utf8')).trim(), 10);
    return Number.isSafeInteger(pid) && pid > 0 ? pid : undefined;
  } catch {
    return undefined;
  }
}

function isRunning(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e: unknown) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}
