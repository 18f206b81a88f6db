import type { Buffer } from 'node:buffer';
import type { Mutation } from '../kv-state.js';
import { ByteReader, ByteWriter } from './byte-codec.js';

/** A logged mutation with its sequence number: records are numbered 1, 2, 3 … with no gaps. */
export interface LogRecord {
  readonly seq: number;
  readonly mutation: Mutation;
}

const OP = { put: 1, delete: 2, grant: 3, keepalive: 4, revoke: 5 } as const;

export function encodeRecord(r: LogRecord): Buffer {
  const w = new ByteWriter(r.mutation.op === 'put' ? 64 + r.mutation.value.byteLength : 64);
  const m = r.mutation;
  w.u8(OP[m.op]).u48(r.seq);
  switch (m.op) {
    case 'put':
      return w.string(m.key).bytes(m.value).u48(m.lease).finish();
    case 'delete':
      return w.string(m.key).finish();
    case 'grant':
      return w.u48(m.lease).u48(m.ttlMs).u48(m.expiresAt).finish();
    case 'keepalive':
      return w.u48(m.lease).u48(m.expiresAt).finish();
    case 'revoke':
      return w.u48(m.lease).finish();
  }
}

/** Decodes a record; throws on anything malformed (a CRC-valid frame we cannot read is corruption). */
export function decodeRecord(payload: Buffer): LogRecord {
  const r = new ByteReader(payload);
  const op = r.u8();
  const seq = r.u48();
  let mutation: Mutation;
  switch (op) {
    case OP.put:
      mutation = { op: 'put', key: r.string(), value: r.bytes(), lease: r.u48() };
      break;
    case OP.delete:
      mutation = { op: 'delete', key: r.string() };
      break;
    case OP.grant:
      mutation = { op: 'grant', lease: r.u48(), ttlMs: r.u48(), expiresAt: r.u48() };
      break;
    case OP.keepalive:
      mutation = { op: 'keepalive', lease: r.u48(), expiresAt: r.u48() };
      break;
    case OP.revoke:
      mutation = { op: 'revoke', lease: r.u48() };
      break;
    default:
      throw new RangeError(`unknown record type ${op}`);
  }
  if (!r.done) throw new RangeError('trailing bytes in record');
  return { seq, mutation };
}
