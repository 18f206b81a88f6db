export { eventFactoryOf } from './event-factory.js';
export type { EventFactory, EventOptions, EventState } from './event-factory.js';
export type { BeginOptions } from './options.js';
export { beginClient, beginServer } from './server.js';
