import { Buffer } from 'node:buffer';

/**
 * Little-endian binary writer/reader for the embedded store's files. Integers are unsigned 48-bit
 * (Buffer's widest exact integer): revisions, sequence numbers, lease ids and epoch milliseconds all
 * fit. Strings are UTF-8 with a 32-bit length.
 */
export class ByteWriter {
  #buf: Buffer;
  #pos = 0;

  constructor(initial = 256) {
    this.#buf = Buffer.allocUnsafe(initial);
  }

  u8(n: number): this {
    this.#room(1);
    this.#buf.writeUInt8(n, this.#pos);
    this.#pos += 1;
    return this;
  }

  u32(n: number): this {
    this.#room(4);
    this.#buf.writeUInt32LE(n, this.#pos);
    this.#pos += 4;
    return this;
  }

  u48(n: number): this {
    this.#room(6);
    this.#buf.writeUIntLE(n, this.#pos, 6);
    this.#pos += 6;
    return this;
  }

  bytes(b: Uint8Array): this {
    this.u32(b.byteLength);
    this.#room(b.byteLength);
    this.#buf.set(b, this.#pos);
    this.#pos += b.byteLength;
    return this;
  }

  string(s: string): this {
    return this.bytes(Buffer.from(s, 'utf8'));
  }

  /** The bytes written so far (a view, not a copy). */
  finish(): Buffer {
    return this.#buf.subarray(0, this.#pos);
  }

  #room(n: number): void {
    if (this.#pos + n <= this.#buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.#buf.length * 2, this.#pos + n));
    this.#buf.copy(next, 0, 0, this.#pos);
    this.#buf = next;
  }
}

/** Reads what ByteWriter wrote; throws RangeError past the end (callers turn that into corruption). */
export class ByteReader {
  readonly #buf: Buffer;
  #pos = 0;

  constructor(buf: Buffer) {
    this.#buf = buf;
  }

  get done(): boolean {
    return this.#pos === this.#buf.length;
  }

  u8(): number {
    const n = this.#buf.readUInt8(this.#pos);
    this.#pos += 1;
    return n;
  }

  u32(): number {
    const n = this.#buf.readUInt32LE(this.#pos);
    this.#pos += 4;
    return n;
  }

  u48(): number {
    const n = this.#buf.readUIntLE(this.#pos, 6);
    this.#pos += 6;
    return n;
  }

  /** A copy, so the result does not pin the (possibly large) buffer it came from. */
  bytes(): Uint8Array {
    const len = this.u32();
    if (this.#pos + len > this.#buf.length) throw new RangeError('length past the end');
    const out = new Uint8Array(this.#buf.subarray(this.#pos, this.#pos + len));
    this.#pos += len;
    return out;
  }

  string(): string {
    const len = this.u32();
    if (this.#pos + len > this.#buf.length) throw new RangeError('length past the end');
    const s = this.#buf.toString('utf8', this.#pos, this.#pos + len);
    this.#pos += len;
    return s;
  }
}
