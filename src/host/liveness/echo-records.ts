import { formatIp, parseIp } from '../../util/ip-prefix.js';
import type { IpFamily } from '../../util/ip-prefix.js';

/**
 * The packed records the prober and the addon's icmpSend/icmpReceive share
 * (socket-buffers/native/icmp-liveness.c, which documents the layout): the prober writes a watch's
 * record once, at watch(), and matches replies by reading numbers, so a tick makes no string or
 * object per echo. Also used by in-memory addons in tests to read what was sent and queue replies.
 */

/** icmpSend's table: interface name (16 bytes), source, destination (16 bytes each), echo id (u16 BE), 2 unused. */
export const echoRecordBytes = 52;
/** icmpReceive's records, as 32-bit words: id | seq << 16, then the source address's 16 bytes as 4 words. */
export const replyRecordWords = 5;

const ifNameAt = 0;
const srcAt = 16;
const dstAt = 32;
const idAt = 48;

/** An IP address as its family and 16 bytes (IPv4 in the first 4, the rest 0); undefined when not an address. */
export function addressBytes(text: string): { family: IpFamily; bytes: Uint8Array } | undefined {
  const ip = parseIp(text);
  if (ip === undefined) return undefined;
  const bytes = new Uint8Array(16);
  let v = ip.value;
  for (let i = (ip.family === 4 ? 4 : 16) - 1; i >= 0; i--) {
    bytes[i] = Number(v & 0xffn);
    v >>= 8n;
  }
  return { family: ip.family, bytes };
}

/** The address of `bytes` (addressBytes' layout) as text. */
export function addressText(family: IpFamily, bytes: Uint8Array): string {
  const n = family === 4 ? 4 : 16;
  let v = 0n;
  for (let i = 0; i < n; i++) v = (v << 8n) | BigInt(bytes[i] ?? 0);
  return formatIp(family, v);
}

/**
 * The four 32-bit words icmpReceive writes for a reply from this address (words in host byte
 * order, as a Uint32Array over the bytes reads them): equal words, equal address.
 */
export function addressWords(bytes: Uint8Array): [number, number, number, number] {
  const copy = new Uint8Array(16);
  copy.set(bytes.subarray(0, 16));
  const w = new Uint32Array(copy.buffer, 0, 4);
  return [w[0] ?? 0, w[1] ?? 0, w[2] ?? 0, w[3] ?? 0];
}

export interface EchoRecord {
  /** The interface name; one longer than 15 bytes fills all 16 and is refused by the addon (ENODEV). */
  readonly ifName: string;
  readonly src: Uint8Array;
  readonly dst: Uint8Array;
  readonly id: number;
}

/** Writes record `row` of an icmpSend table. */
export function writeEchoRecord(table: Uint8Array, row: number, r: EchoRecord): void {
  const at = row * echoRecordBytes;
  table.fill(0, at, at + echoRecordBytes);
  const name = new TextEncoder().encode(r.ifName);
  table.set(name.subarray(0, 16), at + ifNameAt);
  table.set(r.src.subarray(0, 16), at + srcAt);
  table.set(r.dst.subarray(0, 16), at + dstAt);
  table[at + idAt] = (r.id >> 8) & 0xff;
  table[at + idAt + 1] = r.id & 0xff;
}

/** Reads record `row` of an icmpSend table (what an in-memory addon sends). */
export function readEchoRecord(table: Uint8Array, row: number): EchoRecord {
  const at = row * echoRecordBytes;
  const name = table.subarray(at + ifNameAt, at + ifNameAt + 16);
  const end = name.indexOf(0);
  return {
    ifName: new TextDecoder().decode(end < 0 ? name : name.subarray(0, end)),
    src: table.slice(at + srcAt, at + srcAt + 16),
    dst: table.slice(at + dstAt, at + dstAt + 16),
    id: ((table[at + idAt] ?? 0) << 8) | (table[at + idAt + 1] ?? 0),
  };
}

/** Writes reply `index` into an icmpReceive buffer (what an in-memory addon receives). */
export function writeReply(
  out: Uint32Array,
  index: number,
  r: { readonly id: number; readonly seq: number; readonly from: Uint8Array },
): void {
  const at = index * replyRecordWords;
  out[at] = ((r.id & 0xffff) | ((r.seq & 0xffff) << 16)) >>> 0;
  const w = addressWords(r.from);
  for (let i = 0; i < 4; i++) out[at + 1 + i] = w[i] ?? 0;
}
