export { FakeClock, flushMicrotasks } from './clock.js';
export { SequenceRandom } from './random.js';
