// gRPC plumbing for the whole agent: one way to serve, dial, secure and type NSM's gRPC services.
export {
  deserializerFor,
  methodDefinition,
  methodPath,
  methodPaths,
  serializerFor,
  serviceDefinition,
} from './service-definition.js';
export { implement } from './implement-service.js';
export type {
  BidiStreamingImpl,
  CallContext,
  ClientStreamingImpl,
  MethodImpl,
  ServerStream,
  ServerStreamingImpl,
  ServiceImpl,
  ServiceRegistration,
  UnaryImpl,
} from './implement-service.js';
export { makeClient } from './typed-client.js';
export type {
  BidiStream,
  CallOptions,
  ClientDefaults,
  ClientMethod,
  ClientStreamingCall,
  ResponseStream,
  ServiceClient,
} from './typed-client.js';
export { bindAddress, dialTarget, formatGrpcUrl, isLocalOnly, parseGrpcUrl } from './url.js';
export type { GrpcUrl } from './url.js';
export { startServer } from './server.js';
export type { BoundListener, GrpcServer, Listener, StartServerOptions } from './server.js';
export { dial } from './dial.js';
export type { DialOptions, GrpcConnection } from './dial.js';
export {
  checkServerSpiffeId,
  checkedServerIdentity,
  clientCredentials,
  insecure,
  serverCredentials,
} from './credentials.js';
export { updatableClientCredentials, updatableServerCredentials } from './updatable-credentials.js';
export type {
  ServerIdentityPem,
  UpdatableClientCredentials,
  UpdatableServerCredentials,
} from './updatable-credentials.js';
export type {
  AuthorizePeer,
  ClientCredentialsOptions,
  ClientTlsCredentials,
  ClientTransportCredentials,
  ExpectedPeer,
  InsecureCredentials,
  ServerCredentialsOptions,
  ServerTlsCredentials,
  ServerTransportCredentials,
} from './credentials.js';
export { peerIdentity, peerSpiffeId, spiffeIdFromCertificate } from './svid.js';
export type { HasAuthContext, PeerIdentity } from './svid.js';
export { parseSpiffeId } from './spiffe-id.js';
export type { SpiffeId } from './spiffe-id.js';
export { authorizationInterceptor } from './authorize-peer.js';
export { createHealth, ServingStatus } from './health.js';
export type { HealthStatus } from './health.js';
export { fromCallError, grpcStatusFor, toEdgeStatus } from './status.js';
export type { EdgeStatus } from './status.js';
export {
  DEFAULT_UNARY_TIMEOUT_MS,
  channelOptions,
  defaultClientTuning,
  defaultServerTuning,
  serverOptions,
} from './options.js';
export type { ClientTuning, ServerTuning } from './options.js';
export { prepareUnixSocket, probeUnixSocket } from './unix-socket.js';
export type { SocketProbe } from './unix-socket.js';
