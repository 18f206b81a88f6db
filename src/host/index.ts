export { systemClock, sleepWith } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export { systemRandom } from './random.js';
export type { Random } from './random.js';
