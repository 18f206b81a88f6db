import { AgentError } from '../errors/index.js';
import { formatProblem } from './config-problems.js';
import type { ConfigProblem } from './config-problems.js';

/**
 * A config file that cannot be used. Code CONFIG_INVALID like any AgentError, plus the structured
 * problems so `nsm-agent config validate --json` can report them one by one. The message names the
 * file and every problem, and the hint says how to check the fix; the file itself is never touched.
 */
export class ConfigInvalidError extends AgentError {
  readonly file: string;
  readonly problems: readonly ConfigProblem[];

  constructor(file: string, problems: readonly ConfigProblem[], cause?: unknown) {
    const lines = problems.map((p) => `  - ${formatProblem(p)}`);
    const count = problems.length === 1 ? '1 problem' : `${problems.length} problems`;
    super('CONFIG_INVALID', `config file ${file} is invalid (${count}):\n${lines.join('\n')}`, {
      hint: `fix the file (it was not changed), then check it with: nsm-agent config validate --config ${file}`,
      ...(cause === undefined ? {} : { cause }),
      details: { file, problems: problems.length },
    });
    this.file = file;
    this.problems = problems;
  }
}
