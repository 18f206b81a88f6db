import type { Random } from '../../host/index.js';

export interface BackoffOptions {
  /** First ceiling (default 1 s). */
  readonly initialMs: number;
  /**
   * Largest ceiling (default 10 s). The proxy sleeps this backoff after a session ends or fails, then
   * waits for its channel to be READY; so it paces sessions that keep failing on a connected channel
   * (upstream answers but refuses the watch, say), and 10 s instead of 30 s keeps such a retry well
   * inside one refresh period (40 s, R19). Reconnecting itself is grpc-js's (see options.ts).
   */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 1_000, maxMs: 10_000 });

/**
 * "Full jitter" exponential backoff: a uniform delay in [0, min(max, initial·2^attempt)). A fleet of
 * agents that lost the control server at the same instant spreads its retries over the whole window
 * instead of arriving together (reliability R24); the expected delay is half the ceiling.
 */
export function fullJitterDelay(
  attempt: number,
  random: Random,
  options: BackoffOptions = DEFAULT_BACKOFF,
): number {
  const ceiling = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(attempt, 30));
  return Math.floor(random.float() * ceiling);
}
