export { chainContextOf, connectClient, networkServiceOf } from './grpc-edge.js';
export type { ChainEdgeOptions, ConnectClientOptions } from './grpc-edge.js';
