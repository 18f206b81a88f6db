import { create, fromBinary, toBinary } from '@bufbuild/protobuf';
import type {
  DescMessage,
  DescMethod,
  DescService,
  Message,
  MessageInitShape,
  MessageShape,
} from '@bufbuild/protobuf';
import type { MethodDefinition, ServiceDefinition } from '@grpc/grpc-js';

/**
 * protobuf-es descriptors → grpc-js service definitions. The HTTP/2 `:path` is the only place a
 * service name is on the wire, so it is built from the descriptor's full proto name and nothing
 * else: `/<package>.<Service>/<Method>` (docs/nsm-api.md §1.2).
 */
export function methodPath(method: DescMethod): string {
  return `/${method.parent.typeName}/${method.name}`;
}

/** All method paths of a service, in declaration order. */
export function methodPaths(service: DescService): string[] {
  return service.methods.map(methodPath);
}

/** Encodes a message, or a plain init object of its shape, to protobuf bytes. */
export function serializerFor<D extends DescMessage>(schema: D): (value: MessageInitShape<D>) => Buffer {
  return (value) => {
    // create() returns an existing message unchanged, so this costs nothing for real messages.
    const bytes = toBinary(schema, create(schema, value));
    return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  };
}

/** Decodes protobuf bytes; throws on malformed input (grpc-js turns that into an error status). */
export function deserializerFor<D extends DescMessage>(schema: D): (bytes: Buffer) => MessageShape<D> {
  return (bytes) => fromBinary(schema, bytes);
}

/** The grpc-js definition of one method. */
export function methodDefinition(method: DescMethod): MethodDefinition<Message, Message> {
  const requestStream = method.methodKind === 'client_streaming' || method.methodKind === 'bidi_streaming';
  const responseStream = method.methodKind === 'server_streaming' || method.methodKind === 'bidi_streaming';
  return {
    path: methodPath(method),
    originalName: method.name,
    requestStream,
    responseStream,
    requestSerialize: serializerFor(method.input),
    requestDeserialize: deserializerFor(method.input),
    responseSerialize: serializerFor(method.output),
    responseDeserialize: deserializerFor(method.output),
  };
}

/** The grpc-js definition of a service, keyed by each method's protobuf-es local name. */
export function serviceDefinition(service: DescService): ServiceDefinition {
  const def: Record<string, MethodDefinition<Message, Message>> = {};
  for (const method of service.methods) def[method.localName] = methodDefinition(method);
  return def;
}
