export { addressOf, canonicalAddress, canonicalPrefix, hostPrefix, isHostPrefix } from './cidr.js';
export {
  checkDesiredState,
  emptyDesiredState,
  entryKey,
  netnsKey,
  wireguardMtu,
  wireguardOverhead,
  withEntry,
} from './desired-state.js';
export type {
  DesiredEntry,
  DesiredState,
  DeviceSpec,
  HostLocalEntry,
  NetnsLocalEntry,
  TunnelEntry,
} from './desired-state.js';
export { Forwarder } from './forwarder.js';
export type { ApplyResult, ApplyStep, ForwarderOptions } from './forwarder.js';
export {
  deviceKey,
  emptyNetnsView,
  netnsTextKey,
  parseNetnsView,
  readDevices,
  readNetnsText,
  readNetnsView,
  splitListings,
} from './host-state.js';
export type { HostState, NetnsText, NetnsView, ProxyNeighbour } from './host-state.js';
export { NsenterRunner, hostTarget, isMissingNetns, workloadTarget } from './netns-target.js';
export type { NetnsTarget } from './netns-target.js';
export { describeOp, onHost, whereLabel } from './ops.js';
export type { BatchStage, ForwarderOp, Where } from './ops.js';
export {
  checkOwnerMark,
  defaultOwnerMark,
  isOwnedLinkName,
  ownedLinkName,
  removalGroup,
} from './owner-mark.js';
export type { OwnerMark } from './owner-mark.js';
export { plan } from './plan.js';
export type { PlanInput } from './plan.js';
export {
  emptyRecord,
  readRecord,
  recordOf,
  recordPath,
  sameRecord,
  unionRecord,
  writeRecord,
} from './state-record.js';
export type { StateRecord } from './state-record.js';
