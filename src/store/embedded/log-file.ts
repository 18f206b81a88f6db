import { Buffer } from 'node:buffer';
import { open, readdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from './fsync-dir.js';

/** Every log file starts with this; the records follow as frames. */
export const LOG_MAGIC = Buffer.from('NSMLOG01', 'latin1');

export function logFileName(gen: number): string {
  return `log-${String(gen).padStart(12, '0')}`;
}

/** Generations of the log files in `dir`, ascending. */
export async function listLogs(dir: string): Promise<number[]> {
  const gens: number[] = [];
  for (const name of await readdir(dir)) {
    const m = /^log-(\d{12})$/.exec(name);
    if (m?.[1]) gens.push(Number(m[1]));
  }
  return gens.sort((a, b) => a - b);
}

/** Creates log `gen` (header written and durable, directory entry durable), open for appending. */
export async function createLog(dir: string, gen: number): Promise<FileHandle> {
  const path = join(dir, logFileName(gen));
  const fh = await open(path, 'w', 0o600);
  try {
    await writeAll(fh, LOG_MAGIC);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await fsyncDir(dir);
  return open(path, 'a');
}

export async function writeAll(fh: FileHandle, buf: Buffer): Promise<void> {
  let off = 0;
  while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
}
