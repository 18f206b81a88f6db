import { Buffer } from 'node:buffer';
import { crc32 } from 'node:zlib';

/**
 * A record on disk: 4-byte length, 4-byte CRC-32 of the payload, payload. A crash mid-write leaves
 * a frame whose length runs past the end of the file or whose CRC does not match; scanning stops
 * there, so the valid prefix is exactly the frames written completely. Log files are preallocated
 * with zeros; a zero header marks the end of what was written.
 */
export const FRAME_HEADER_BYTES = 8;

export function frame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_BYTES + payload.byteLength);
  out.writeUInt32LE(payload.byteLength, 0);
  out.writeUInt32LE(crc32(payload), 4);
  out.set(payload, FRAME_HEADER_BYTES);
  return out;
}

export interface ScanResult {
  /** Payloads of the complete, CRC-valid frames from the start, in order. */
  readonly payloads: Buffer[];
  /** Bytes covered by those frames; anything after is torn or corrupt. */
  readonly validBytes: number;
  /** Why the scan stopped before the end, if it did; zeros after the last frame are a clean end. */
  readonly stop?: 'torn' | 'crc' | 'too-large';
}

/** Reads frames from `buf` starting at `offset` until the end or the first bad frame. */
export function scanFrames(buf: Buffer, offset: number, maxPayload: number): ScanResult {
  const payloads: Buffer[] = [];
  let pos = offset;
  while (pos < buf.length) {
    if (pos + FRAME_HEADER_BYTES > buf.length) return { payloads, validBytes: pos, stop: 'torn' };
    const len = buf.readUInt32LE(pos);
    // No record is empty, so a zero length is the preallocated, never-written rest of the file.
    if (len === 0 && buf.readUInt32LE(pos + 4) === 0) {
      if (buf.subarray(pos).every((b) => b === 0)) return { payloads, validBytes: pos };
      return { payloads, validBytes: pos, stop: 'crc' };
    }
    if (len > maxPayload) return { payloads, validBytes: pos, stop: 'too-large' };
    const end = pos + FRAME_HEADER_BYTES + len;
    if (end > buf.length) return { payloads, validBytes: pos, stop: 'torn' };
    const payload = buf.subarray(pos + FRAME_HEADER_BYTES, end);
    if (crc32(payload) !== buf.readUInt32LE(pos + 4)) return { payloads, validBytes: pos, stop: 'crc' };
    payloads.push(payload);
    pos = end;
  }
  return { payloads, validBytes: pos };
}
