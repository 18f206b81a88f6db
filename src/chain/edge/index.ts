export { chainContextOf, connectClient, networkServiceOf } from './grpc-edge.js';
export type { ChainEdgeOptions, ConnectClientOptions, NetworkServiceClient } from './grpc-edge.js';
export { inProcessConnect } from './in-process.js';
