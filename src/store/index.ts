export type { DeleteOptions, Entry, ListResult, PutOptions, Store, WatchEvent } from './store.js';
export { MemoryStore } from './memory-store.js';
export type { MemoryStoreOptions } from './memory-store.js';
export { isCompacted, isConflict } from './store-errors.js';
export type { StoreFailureReason } from './store-errors.js';
export { MAX_KEY_BYTES, MAX_VALUE_BYTES, MAX_LEASE_TTL_MS } from './limits.js';
export { EmbeddedStore } from './embedded-store.js';
export type { EmbeddedStoreOptions } from './embedded-store.js';
