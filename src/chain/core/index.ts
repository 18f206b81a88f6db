export { buildChain, checkOrder } from './chain.js';
export type { Chain } from './chain.js';
export { ChainContext, ContextKey } from './context.js';
export type { ChainContextInit, PeerInfo } from './context.js';
export type { ChainElement, Next, OrderRules } from './element.js';
export { SerialExecutor } from './executor.js';
export { TimerQueue } from './timer-queue.js';
export { traced } from './trace.js';
export {
  OutgoingMetadata,
  incomingMetadataOf,
  outgoingMetadataOf,
  withIncomingMetadata,
  withOutgoingMetadata,
} from './call-metadata.js';
