/**
 * The NSM wire API as the rest of the agent sees it: generated message types and schemas, service
 * descriptors, the mechanism vocabulary and connection helpers. Other layers import from here, never
 * from ./gen, so regenerating code or moving a helper touches one file.
 *
 * Renamed on the way out, because the generated names collide or mislead outside their package:
 * the service descriptors get a `Service` suffix (`networkservice.NetworkService` the service vs
 * `registry.NetworkService` the message), ipam's enum `Type` becomes `PrefixRequestType`, and
 * `registry.Metadata` becomes `MatchMetadata` (grpc-js has a `Metadata` used in the same files).
 */

// Message runtime, re-exported so callers need one import for create/toBinary/fromBinary.
export { clone, create, equals, fromBinary, toBinary } from '@bufbuild/protobuf';
export type { DescMessage, MessageInitShape, MessageShape } from '@bufbuild/protobuf';
export { EmptySchema, TimestampSchema } from '@bufbuild/protobuf/wkt';
export type { Empty, Timestamp } from '@bufbuild/protobuf/wkt';

// package connection
export {
  ConnectionEventSchema,
  ConnectionEventType,
  ConnectionEventTypeSchema,
  ConnectionSchema,
  MechanismSchema,
  MonitorConnection as MonitorConnectionService,
  MonitorScopeSelectorSchema,
  PathSchema,
  PathSegmentSchema,
  State,
  StateSchema,
} from './gen/connection_pb.js';
export type {
  Connection,
  ConnectionEvent,
  Mechanism,
  MonitorScopeSelector,
  Path,
  PathSegment,
} from './gen/connection_pb.js';

// package connectioncontext
export {
  ConnectionContextSchema,
  DNSConfigSchema,
  DNSContextSchema,
  EthernetContextSchema,
  ExtraPrefixRequestSchema,
  IPContextSchema,
  IpFamily_Family,
  IpFamily_FamilySchema,
  IpFamilySchema,
  IpNeighborSchema,
  PolicyRouteSchema,
  RouteSchema,
} from './gen/connectioncontext_pb.js';
export type {
  ConnectionContext,
  DNSConfig,
  DNSContext,
  EthernetContext,
  ExtraPrefixRequest,
  IPContext,
  IpFamily,
  IpNeighbor,
  PolicyRoute,
  Route,
} from './gen/connectioncontext_pb.js';

// package networkservice
export {
  NetworkService as NetworkServiceService,
  NetworkServiceRequestSchema,
} from './gen/networkservice_pb.js';
export type { NetworkServiceRequest } from './gen/networkservice_pb.js';

// package registry
export {
  DestinationSchema,
  MatchSchema,
  MetadataSchema as MatchMetadataSchema,
  NetworkServiceEndpointQuerySchema,
  NetworkServiceEndpointRegistry as NetworkServiceEndpointRegistryService,
  NetworkServiceEndpointResponseSchema,
  NetworkServiceEndpointSchema,
  NetworkServiceLabelsSchema,
  NetworkServiceQuerySchema,
  NetworkServiceRegistry as NetworkServiceRegistryService,
  NetworkServiceResponseSchema,
  NetworkServiceSchema,
} from './gen/registry_pb.js';
export type {
  Destination,
  Match,
  Metadata as MatchMetadata,
  NetworkService,
  NetworkServiceEndpoint,
  NetworkServiceEndpointQuery,
  NetworkServiceEndpointResponse,
  NetworkServiceLabels,
  NetworkServiceQuery,
  NetworkServiceResponse,
} from './gen/registry_pb.js';

// package ipam (vL3 only)
export {
  IPAM as IpamService,
  PrefixRequestSchema,
  PrefixResponseSchema,
  Type as PrefixRequestType,
  TypeSchema as PrefixRequestTypeSchema,
} from './gen/ipam_pb.js';
export type { PrefixRequest, PrefixResponse } from './gen/ipam_pb.js';

// package grpc.health.v1
export {
  Health as HealthService,
  HealthCheckRequestSchema,
  HealthCheckResponse_ServingStatus,
  HealthCheckResponseSchema,
  HealthListRequestSchema,
  HealthListResponseSchema,
} from './gen/health_pb.js';
export type {
  HealthCheckRequest,
  HealthCheckResponse,
  HealthListRequest,
  HealthListResponse,
} from './gen/health_pb.js';

// package nsmagent.enrol.v1 (our own enrolment API, not NSM's wire)
export {
  CreateTokenRequestSchema,
  CreateTokenResponseSchema,
  EnrolRequestSchema,
  EnrolResponseSchema,
  Enrolment as EnrolmentService,
  EnrolmentAdmin as EnrolmentAdminService,
  HostFactsSchema,
  HostInfoSchema,
  ListHostsRequestSchema,
  ListHostsResponseSchema,
  ListTokensRequestSchema,
  ListTokensResponseSchema,
  RenewRequestSchema,
  RevokeHostRequestSchema,
  RevokeTokenRequestSchema,
  TokenInfoSchema,
} from './gen/enrol_pb.js';
// TokenInfo/HostInfo get a Message suffix: identity has domain types of the same names.
export type {
  CreateTokenRequest,
  CreateTokenResponse,
  EnrolRequest,
  EnrolResponse,
  HostFacts,
  HostInfo as HostInfoMessage,
  ListHostsRequest,
  ListHostsResponse,
  ListTokensRequest,
  ListTokensResponse,
  RenewRequest,
  RevokeHostRequest,
  RevokeTokenRequest,
  TokenInfo as TokenInfoMessage,
} from './gen/enrol_pb.js';

// Helpers
export {
  CommonParam,
  DefaultPort,
  IpsecParam,
  isMechanismType,
  isValidInterfaceName,
  isWireguardKey,
  KERNEL_NETNS_URL_SCHEME,
  KernelParam,
  kernelMechanism,
  Label,
  LINUX_IFNAME_MAX_LENGTH,
  MECHANISM_CLASS_OF,
  MechanismClass,
  MechanismType,
  MemifParam,
  MTU_MAX,
  noopMechanism,
  OWN_NETNS_URL,
  Payload,
  Srv6Param,
  VfioParam,
  VlanParam,
  VNI_MAX,
  vxlanMechanism,
  VxlanParam,
  wireguardMechanism,
  WireguardParam,
} from './mechanisms.js';
export type {
  KernelMechanismOptions,
  VxlanMechanismOptions,
  WireguardMechanismOptions,
} from './mechanisms.js';
export {
  readBool,
  readIp,
  readMtu,
  readParam,
  readPort,
  readVlan,
  readVni,
  readWireguardKey,
  requireParam,
} from './mechanism-params.js';
export {
  cloneConnection,
  currentSegment,
  newClientConnection,
  nextSegment,
  prevSegment,
} from './connection.js';
export type { NewClientConnectionOptions } from './connection.js';
export { TIMESTAMP_MAX_SECONDS, TIMESTAMP_MIN_SECONDS, timestampToMs, toTimestamp } from './timestamp.js';
export { NSC_URL_FORM, parseNscUrl } from './nsc-url.js';
export type { NscUrl } from './nsc-url.js';
export { decodeMessage } from './decode-message.js';
export {
  packConnection,
  packedBytes,
  packEncoded,
  packMessage,
  unpackConnection,
  unpackMessage,
} from './packed-message.js';
export type { PackedConnection, PackedMessage } from './packed-message.js';
