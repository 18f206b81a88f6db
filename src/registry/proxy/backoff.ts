import type { Random } from '../../host/index.js';

export interface BackoffOptions {
  /** First ceiling (default 1 s). */
  readonly initialMs: number;
  /** Largest ceiling (default 30 s): an agent is blind at most this long after upstream returns. */
  readonly maxMs: number;
}

export const DEFAULT_BACKOFF: BackoffOptions = Object.freeze({ initialMs: 1_000, maxMs: 30_000 });

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
