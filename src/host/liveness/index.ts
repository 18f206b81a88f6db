export { icmpLivenessProber } from './icmp-liveness-prober.js';
export type { IcmpProberOptions } from './icmp-liveness-prober.js';
export type { LivenessHandlers, LivenessProber, LivenessTarget, LivenessWatch } from './liveness-prober.js';
