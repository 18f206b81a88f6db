/**
 * A deliberately tiny protobuf wire writer for golden tests. It knows nothing of our schemas: tests
 * spell every field number and wire type by hand from the .proto facts, so the bytes it builds are
 * an independent reference for what the generated code must produce and accept.
 *
 * Values are plain byte arrays (`Bytes`) that compose by concatenation; `message()` and the field
 * helpers take the already-encoded body of a nested message.
 */
export type Bytes = readonly number[];

export const WireType = {
  VARINT: 0,
  I64: 1,
  LEN: 2,
  I32: 5,
} as const;
export type WireType = (typeof WireType)[keyof typeof WireType];

/** Base-128 varint of an unsigned value up to 64 bits. */
export function varint(value: bigint | number): Bytes {
  let v = BigInt(value);
  if (v < 0n || v > 0xffff_ffff_ffff_ffffn) throw new RangeError(`varint out of range: ${v}`);
  const out: number[] = [];
  do {
    const low = Number(v & 0x7fn);
    v >>= 7n;
    out.push(v > 0n ? low | 0x80 : low);
  } while (v > 0n);
  return out;
}

export function tag(field: number, wireType: WireType): Bytes {
  return varint((field << 3) | wireType);
}

export function concat(...parts: Bytes[]): Bytes {
  return parts.flat();
}

export function toUint8Array(...parts: Bytes[]): Uint8Array {
  return Uint8Array.from(concat(...parts));
}

/** Field of wire type VARINT holding an unsigned value (uint32, uint64, bool, non-negative enum). */
export function uintField(field: number, value: bigint | number): Bytes {
  return concat(tag(field, WireType.VARINT), varint(value));
}

/** int32/int64/enum: a negative value is sign-extended to 64 bits, so it always takes 10 bytes. */
export function intField(field: number, value: bigint | number): Bytes {
  return uintField(field, BigInt.asUintN(64, BigInt(value)));
}

export function boolField(field: number, value: boolean): Bytes {
  return uintField(field, value ? 1 : 0);
}

/** Field of wire type LEN: length prefix then the raw body. */
export function lenField(field: number, body: Bytes): Bytes {
  return concat(tag(field, WireType.LEN), varint(body.length), body);
}

export function stringField(field: number, value: string): Bytes {
  return lenField(field, [...new TextEncoder().encode(value)]);
}

/** Nested message: the body is the concatenation of the child's fields. */
export function messageField(field: number, ...body: Bytes[]): Bytes {
  return lenField(field, concat(...body));
}

/** One map entry: a nested message with key = field 1 and value = field 2, both always written. */
export function mapEntry(field: number, key: Bytes, value: Bytes): Bytes {
  return messageField(field, key, value);
}

/** map<string,string> as separate records, one entry per pair in the given order. */
export function stringMapEntries(field: number, entries: readonly (readonly [string, string])[]): Bytes[] {
  return entries.map(([k, v]) => mapEntry(field, stringField(1, k), stringField(2, v)));
}

/** map<string,string>, one entry per pair in the given order. */
export function stringMapField(field: number, entries: readonly (readonly [string, string])[]): Bytes {
  return concat(...stringMapEntries(field, entries));
}

/** repeated string: one field per element (strings are never packed). */
export function repeatedStringField(field: number, values: readonly string[]): Bytes {
  return concat(...values.map((v) => stringField(field, v)));
}

/** Hex for assertion messages. */
export function hex(bytes: Bytes | Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}
