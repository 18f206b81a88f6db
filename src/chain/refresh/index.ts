export { refreshClient, refreshPlan } from './client.js';
export type { RefreshPlan } from './client.js';
export type { RefreshOptions } from './options.js';
