import { Buffer } from 'node:buffer';
import { open, readdir } from 'node:fs/promises';
import type { FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { fsyncDir } from './fsync-dir.js';

/** Every log file starts with this; the records follow as frames, then zeros up to the file's end. */
export const LOG_MAGIC = Buffer.from('NSMLOG01', 'latin1');

/**
 * Log files grow in zero-filled chunks written ahead of the records. Overwriting blocks that
 * already exist lets fdatasync skip the file-size metadata update an append needs: about twice the
 * fsyncs per second on this project's CI disks (1.4–2.1k/s appending, 3.3–3.9k/s preallocated).
 */
const CHUNK_BYTES = 4 * 1024 * 1024;

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

/**
 * True when `buf` is a log whose creation was cut short: its header incomplete (a prefix of it, or
 * zeros) and nothing else in it. A complete header followed by zeros is a valid, empty log.
 */
export function isUnstartedLog(buf: Buffer): boolean {
  const head = buf.subarray(0, Math.min(buf.length, LOG_MAGIC.length));
  if (head.equals(LOG_MAGIC)) return false;
  const headTorn = head.every((b, i) => b === LOG_MAGIC[i] || b === 0);
  return headTorn && buf.subarray(LOG_MAGIC.length).every((b) => b === 0);
}

/** Appends frames to one log file at a known position, preallocating ahead, one fdatasync per append. */
export class LogWriter {
  readonly path: string;
  #fh: FileHandle;
  #pos: number;
  #allocated: number;

  private constructor(path: string, fh: FileHandle, pos: number, allocated: number) {
    this.path = path;
    this.#fh = fh;
    this.#pos = pos;
    this.#allocated = allocated;
  }

  /** Creates log `gen`: header and first chunk durable, directory entry durable. */
  static async create(dir: string, gen: number): Promise<LogWriter> {
    const path = join(dir, logFileName(gen));
    const fh = await open(path, 'w+', 0o600);
    try {
      const first = Buffer.alloc(CHUNK_BYTES);
      LOG_MAGIC.copy(first, 0);
      await writeAllAt(fh, first, 0);
      await fh.sync();
      await fsyncDir(dir);
      return new LogWriter(path, fh, LOG_MAGIC.length, first.length);
    } catch (e: unknown) {
      await fh.close();
      throw e;
    }
  }

  /** Opens an existing log to continue writing at byte `end` (the end of its valid records). */
  static async resume(path: string, end: number): Promise<LogWriter> {
    const fh = await open(path, 'r+');
    const { size } = await fh.stat();
    return new LogWriter(path, fh, end, size);
  }

  /** Bytes of header and records written so far. */
  get position(): number {
    return this.#pos;
  }

  async append(buf: Buffer): Promise<void> {
    const end = this.#pos + buf.length;
    if (end > this.#allocated) {
      // Zeros up to the next whole chunk past `end`; the size change is made durable once, here.
      const target = Math.ceil((end + 1) / CHUNK_BYTES) * CHUNK_BYTES;
      await writeAllAt(this.#fh, Buffer.alloc(target - this.#allocated), this.#allocated);
      await this.#fh.sync();
      this.#allocated = target;
    }
    await writeAllAt(this.#fh, buf, this.#pos);
    await this.#fh.datasync();
    this.#pos = end;
  }

  async close(): Promise<void> {
    await this.#fh.close();
  }
}

async function writeAllAt(fh: FileHandle, buf: Buffer, position: number): Promise<void> {
  let off = 0;
  while (off < buf.length) {
    off += (await fh.write(buf, off, buf.length - off, position + off)).bytesWritten;
  }
}
