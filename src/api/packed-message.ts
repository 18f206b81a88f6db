import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { fromBinary, toBinary } from '@bufbuild/protobuf';

declare const packedOf: unique symbol;

/**
 * A protobuf message kept for later in its wire form: the encoded bytes as a one-byte string, one
 * character per byte (latin1 maps bytes 0–255 to U+0000–U+00FF and back exactly).
 *
 * Why: what a daemon keeps per connection (the last request begin re-sends on refresh, the
 * connection the monitor reports) is read seldom and must not change under its keeper. A protobuf-es
 * message tree spends most of its size on object headers, out-of-object property arrays and
 * over-allocated lists — a Connection with a four-hop path is ~3.4 KB of objects besides its
 * strings, its encoding ~1.5 KB. A string is one heap object with nothing else attached; a Uint8Array
 * from toBinary would be a view into the writer's much larger buffer. Every unpack is a fresh deep copy.
 */
export type PackedMessage<Desc extends DescMessage> = string & { readonly [packedOf]: Desc };

export function packMessage<Desc extends DescMessage>(
  schema: Desc,
  message: MessageShape<Desc>,
): PackedMessage<Desc> {
  return packEncoded(schema, toBinary(schema, message));
}

/** Bytes that are already `schema`'s encoding (read from a file), in packed form. */
export function packEncoded<Desc extends DescMessage>(_schema: Desc, bytes: Uint8Array): PackedMessage<Desc> {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString(
    'latin1',
  ) as PackedMessage<Desc>;
}

/** The encoded bytes (a fresh buffer). */
export function packedBytes(packed: PackedMessage<DescMessage>): Buffer {
  return Buffer.from(packed, 'latin1');
}

export function unpackMessage<Desc extends DescMessage>(
  schema: Desc,
  packed: PackedMessage<Desc>,
): MessageShape<Desc> {
  return fromBinary(schema, packedBytes(packed));
}
