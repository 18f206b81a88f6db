export type { DeleteOptions, Entry, ListResult, PutOptions, Store, WatchEvent } from './store.js';
