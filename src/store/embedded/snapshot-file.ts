import { Buffer } from 'node:buffer';
import { open, readFile, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError, describe } from '../../errors/index.js';
import type { KvSnapshot } from '../kv-state.js';
import { ByteReader, ByteWriter } from './byte-codec.js';
import { frame, scanFrames } from './frame.js';
import { fsyncDir } from './fsync-dir.js';

export const SNAPSHOT_FILE = 'snapshot';
const MAGIC = Buffer.from('NSMSNAP1', 'latin1');

/** A snapshot and where replay continues: logs from `firstLog` on, records after `lastSeq`. */
export interface SnapshotFile {
  readonly firstLog: number;
  readonly lastSeq: number;
  readonly state: KvSnapshot;
}

export function encodeSnapshot(s: SnapshotFile): Buffer {
  const w = new ByteWriter(4096);
  w.u48(s.firstLog).u48(s.lastSeq).u48(s.state.revision).u48(s.state.nextLeaseId);
  w.u32(s.state.entries.length);
  for (const e of s.state.entries) {
    w.string(e.key).bytes(e.value).u48(e.modRevision).u48(e.createRevision).u48(e.lease);
  }
  w.u32(s.state.leases.length);
  for (const l of s.state.leases) w.u48(l.id).u48(l.ttlMs).u48(l.expiresAt);
  return Buffer.concat([MAGIC, frame(w.finish())]);
}

/** Parses a snapshot; throws a plain Error saying what is wrong (the caller names the file). */
export function decodeSnapshot(buf: Buffer): SnapshotFile {
  if (buf.length < MAGIC.length || !buf.subarray(0, MAGIC.length).equals(MAGIC)) {
    throw new Error('it does not start with the snapshot signature');
  }
  const scan = scanFrames(buf, MAGIC.length, buf.length);
  const payload = scan.payloads[0];
  if (scan.stop || scan.payloads.length !== 1 || !payload) {
    throw new Error(`its checksum or length is wrong (${scan.stop ?? 'extra data'})`);
  }
  const r = new ByteReader(payload);
  const firstLog = r.u48();
  const lastSeq = r.u48();
  const revision = r.u48();
  const nextLeaseId = r.u48();
  const entries = Array.from({ length: r.u32() }, () => ({
    key: r.string(),
    value: r.bytes(),
    modRevision: r.u48(),
    createRevision: r.u48(),
    lease: r.u48(),
  }));
  const leases = Array.from({ length: r.u32() }, () => ({ id: r.u48(), ttlMs: r.u48(), expiresAt: r.u48() }));
  if (!r.done) throw new Error('it has trailing bytes');
  return { firstLog, lastSeq, state: { revision, nextLeaseId, entries, leases } };
}

/** Reads `dir/snapshot`; undefined when there is none yet. Corruption is a clear, actionable error. */
export async function readSnapshot(dir: string): Promise<SnapshotFile | undefined> {
  const path = join(dir, SNAPSHOT_FILE);
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw AgentError.wrap(
      e,
      'UNAVAILABLE',
      `cannot read the store snapshot ${path}`,
      'check its permissions',
    );
  }
  try {
    return decodeSnapshot(buf);
  } catch (e: unknown) {
    throw new AgentError('FAILED_PRECONDITION', `the store snapshot ${path} is corrupt: ${describe(e)}`, {
      hint:
        `restore the data directory ${dir} from a backup; or, to start over with an empty store ` +
        '(every host must enrol again), move the directory away',
      cause: e,
      details: { file: path },
    });
  }
}

/** Writes the snapshot atomically: temp file, fsync, rename over the old one, fsync the directory. */
export async function writeSnapshot(dir: string, s: SnapshotFile): Promise<void> {
  const tmp = join(dir, `${SNAPSHOT_FILE}.tmp`);
  const fh = await open(tmp, 'w', 0o600);
  try {
    const buf = encodeSnapshot(s);
    let off = 0;
    while (off < buf.length) off += (await fh.write(buf, off, buf.length - off)).bytesWritten;
    await fh.sync();
  } finally {
    await fh.close();
  }
  await rename(tmp, join(dir, SNAPSHOT_FILE));
  await fsyncDir(dir);
}
