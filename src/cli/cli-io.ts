import type { Command } from 'commander';
import { defaultConfigPath } from '../config/index.js';
import type { ConfigLogLevel } from '../config/index.js';
import type { Handlers } from '../localapi/index.js';
import type { DaemonProcessHooks } from './daemon-memory.js';

/** Anything text can be written to: process.stdout in the binary, a buffer in tests. */
export interface TextWriter {
  write(text: string): unknown;
}

/**
 * Everything the CLI takes from its process, passed in so the whole CLI runs in-process in tests
 * and nothing reads the environment before a command actually runs.
 */
export interface CliIo {
  readonly stdout: TextWriter;
  readonly stderr: TextWriter;
  readonly env: Readonly<Record<string, string | undefined>>;
  /** Implementations of the commands that act (server, tokens, enrolment); loaded on first use. */
  readonly handlers?: () => Promise<Handlers>;
  /** Aborted when the process is asked to stop (SIGINT, SIGTERM); for long-running commands. */
  readonly stopSignal?: () => AbortSignal;
  /** What `run` does to its own process for memory (the binary: daemonProcessHooks); tests: nothing. */
  readonly daemon?: DaemonProcessHooks;
}

export interface GlobalOptions {
  /** The config file to use: --config, else $NSM_AGENT_CONFIG, else /etc/nsm-agent/config.json. */
  readonly configPath: string;
  readonly configPathFrom: 'flag' | 'env' | 'default';
  /** --log-level, when given; it overrides the config's log.level. */
  readonly logLevel?: ConfigLogLevel;
}

export const configEnvVar = 'NSM_AGENT_CONFIG';

/** The global options as seen from a (sub)command's action. */
export function globalOptions(cmd: Command, io: CliIo): GlobalOptions {
  const opts = cmd.optsWithGlobals<{ config?: string; logLevel?: ConfigLogLevel }>();
  const level = opts.logLevel === undefined ? {} : { logLevel: opts.logLevel };
  if (opts.config !== undefined) return { configPath: opts.config, configPathFrom: 'flag', ...level };
  const fromEnv = io.env[configEnvVar];
  if (fromEnv !== undefined && fromEnv !== '')
    return { configPath: fromEnv, configPathFrom: 'env', ...level };
  return { configPath: defaultConfigPath, configPathFrom: 'default', ...level };
}

export function printLine(w: TextWriter, text = ''): void {
  w.write(`${text}\n`);
}

/** Machine-readable output: one JSON document on stdout, pretty-printed so it is also readable. */
export function printJson(io: CliIo, value: unknown): void {
  io.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}
