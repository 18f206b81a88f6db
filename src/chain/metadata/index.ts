export { ConnectionMetadata, MetadataKey, metadataKeys, metadataOf } from './metadata.js';
export type { Side } from './metadata.js';
export { metadataClient, metadataElement, metadataServer } from './server.js';
