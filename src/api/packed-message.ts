import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { fromBinary, toBinary } from '@bufbuild/protobuf';
import { ConnectionSchema } from './gen/connection_pb.js';
import type { Connection } from './gen/connection_pb.js';

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

/**
 * A Connection kept for later (begin's last request, the monitor's copy): its encoding without the
 * path segments' tokens, then the tokens themselves, by reference. Tokens are most of a
 * connection's bytes (four ~340-character JWTs on a two-agent path) and are the same strings in
 * every copy the daemon keeps of the connection, so each copy holds ~0.5 KB of its own instead of
 * ~1.9 KB. Unpacking gives a fresh deep copy with the tokens back in their segments.
 */
export type PackedConnection = readonly [PackedMessage<typeof ConnectionSchema>, ...string[]];

export function packConnection(conn: Connection): PackedConnection {
  const path = conn.path;
  if (!path || path.pathSegments.length === 0) return [packMessage(ConnectionSchema, conn)];
  // Shallow copies with the tokens left out: the caller's connection is not touched.
  const stripped: Connection = {
    ...conn,
    path: { ...path, pathSegments: path.pathSegments.map((s) => ({ ...s, token: '' })) },
  };
  // concat makes an array of the exact length (a pushed-to one keeps spare room).
  const head: string[] = [packMessage(ConnectionSchema, stripped)];
  return head.concat(path.pathSegments.map((s) => s.token)) as unknown as PackedConnection;
}

export function unpackConnection(packed: PackedConnection): Connection {
  const conn = unpackMessage(ConnectionSchema, packed[0]);
  conn.path?.pathSegments.forEach((s, i) => {
    s.token = packed[i + 1] ?? '';
  });
  return conn;
}
