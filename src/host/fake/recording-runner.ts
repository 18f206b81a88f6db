import { checkResult, effectiveArgv } from '../command-runner.js';
import type { CommandRunner, RunOptions, RunResult } from '../command-runner.js';

/** One command as the recording runner saw it. */
export interface RecordedCall {
  /** The argv that would have run, `ip netns exec <ns>` prefix included. */
  readonly argv: readonly string[];
  readonly input?: string;
}

export type ScriptedReply = Partial<RunResult> | ((call: RecordedCall) => Partial<RunResult>);

/**
 * A CommandRunner that runs nothing: it records every argv and answers from a script. Replies are
 * matched by the joined command line — an exact string, a prefix ending in '*', or a RegExp; an
 * unused once() reply wins over on() replies and is used one time, otherwise the first match wins. Unmatched commands succeed with no output,
 * so a test scripts only the answers that matter and compares `transcript` with what it expects.
 */
export class RecordingRunner implements CommandRunner {
  readonly calls: RecordedCall[] = [];
  readonly #rules: { match: string | RegExp; reply: ScriptedReply; once: boolean; used: boolean }[] = [];

  /** Answers every command matching `match` with `reply`. */
  on(match: string | RegExp, reply: ScriptedReply): this {
    this.#rules.push({ match, reply, once: false, used: false });
    return this;
  }

  /** Answers the next command matching `match` with `reply` (before any on() reply), once. */
  once(match: string | RegExp, reply: ScriptedReply): this {
    this.#rules.push({ match, reply, once: true, used: false });
    return this;
  }

  /** Every command line run so far, as argv arrays. */
  get transcript(): string[][] {
    return this.calls.map((c) => [...c.argv]);
  }

  /** Every command line run so far, joined with spaces (easier to read in a failing assertion). */
  get lines(): string[] {
    return this.calls.map((c) => c.argv.join(' '));
  }

  clear(): void {
    this.calls.length = 0;
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const call: RecordedCall = {
      argv: [...effectiveArgv(argv, options.netns)],
      ...(options.input === undefined ? {} : { input: options.input }),
    };
    this.calls.push(call);
    const line = call.argv.join(' ');
    const rule =
      this.#rules.find((r) => r.once && !r.used && matches(r.match, line)) ??
      this.#rules.find((r) => !r.once && matches(r.match, line));
    if (rule) rule.used = true;
    const reply = rule === undefined ? {} : typeof rule.reply === 'function' ? rule.reply(call) : rule.reply;
    return Promise.resolve({ stdout: reply.stdout ?? '', stderr: reply.stderr ?? '', code: reply.code ?? 0 });
  }

  async runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const result = await this.run(argv, options);
    return checkResult(effectiveArgv(argv, options.netns), result);
  }
}

function matches(match: string | RegExp, line: string): boolean {
  if (match instanceof RegExp) return match.test(line);
  if (match.endsWith('*')) return line.startsWith(match.slice(0, -1));
  return line === match;
}
