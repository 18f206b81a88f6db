import type { DescMessage, MessageShape } from '@bufbuild/protobuf';
import { fromBinary } from '@bufbuild/protobuf';
import { AgentError, describe } from '../errors/index.js';

/**
 * fromBinary that fails with an AgentError. protobuf-es throws plain Error, RangeError or
 * TypeError for truncated input, illegal tags and invalid UTF-8; callers at a gRPC edge want one
 * code to map to a status. Unknown fields are kept, so a message relayed to the next hop loses
 * nothing a newer peer added.
 *
 * protobuf-es reads a known field by its declared type whatever wire type the tag says (Go keeps
 * such a field as unknown instead), so a mismatched wire type is only caught when it desynchronises
 * the reader.
 */
export function decodeMessage<Desc extends DescMessage>(schema: Desc, bytes: Uint8Array): MessageShape<Desc> {
  try {
    return fromBinary(schema, bytes);
  } catch (e: unknown) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `cannot decode ${schema.typeName} (${bytes.length} bytes): ${describe(e)}`,
      {
        hint: 'the peer sent bytes that are not this message; check that both sides use the same NSM API',
        cause: e,
      },
    );
  }
}
