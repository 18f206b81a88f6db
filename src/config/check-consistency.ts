import type { AgentConfigFile } from './agent-config.js';
import { formatPath } from './config-problems.js';
import type { ConfigProblem } from './config-problems.js';

/**
 * Rules a JSON schema cannot say: a service is exposed at most once, one netns does not connect to
 * the same service twice (the second entry would silently fight the first), and a liveness interval
 * is either off (0) or at least 100 ms (a faster ping of every connection costs more than it finds).
 */
export function checkConsistency(file: AgentConfigFile): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const interval = file.agent?.liveness?.intervalMs;
  if (interval !== undefined && interval > 0 && interval < 100)
    problems.push({
      path: formatPath(['agent', 'liveness', 'intervalMs']),
      problem: `${interval} ms is too short`,
      fix: 'use 100 or more, or 0 to turn the liveness check off',
    });
  const exposed = new Map<string, number>();
  (file.exposes ?? []).forEach((e, i) => {
    const first = exposed.get(e.service);
    if (first === undefined) exposed.set(e.service, i);
    else
      problems.push({
        path: formatPath(['exposes', i, 'service']),
        problem: `${JSON.stringify(e.service)} is already exposed by ${formatPath(['exposes', first])}`,
        fix: 'merge the two entries',
      });
  });
  const connected = new Map<string, number>();
  (file.connects ?? []).forEach((c, i) => {
    const key = `${c.service}\u0000${c.netns ?? ''}`;
    const first = connected.get(key);
    if (first === undefined) connected.set(key, i);
    else
      problems.push({
        path: formatPath(['connects', i]),
        problem: `repeats ${formatPath(['connects', first])} (same service ${JSON.stringify(c.service)} and netns)`,
        fix: 'remove one of them',
      });
  });
  return problems;
}
