export { healClient } from './client.js';
export type { HealClient, HealRemoteStatus } from './client.js';
export type { HealBackoff, HealEvent, HealOptions } from './options.js';
