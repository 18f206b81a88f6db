import type { AgentConfigFile } from './agent-config.js';
import { formatPath } from './config-problems.js';
import type { ConfigProblem } from './config-problems.js';

/**
 * Rules a JSON schema cannot say: a service is exposed at most once, and one netns does not
 * connect to the same service twice (the second entry would silently fight the first).
 */
export function checkConsistency(file: AgentConfigFile): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
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
