import { readFileSync, statSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import { AgentError, describe } from '../errors/index.js';
import type { AgentConfig, AgentConfigFile } from './agent-config.js';
import { checkConsistency } from './check-consistency.js';
import { ConfigInvalidError } from './config-invalid-error.js';
import { problemsFromViolations } from './config-problems.js';
import { configSchema } from './config-schema.js';
import { applyDefaults } from './defaults.js';
import { JsonSyntaxError, parseConfigJson } from './json-syntax.js';
import { schemaViolations } from './validate.js';

export interface LoadedConfig {
  /** Absolute path of the file. */
  readonly path: string;
  /** False when there is no file: the agent then runs on defaults and nothing is created. */
  readonly exists: boolean;
  /** The file as written (validated); `{}` when it does not exist. */
  readonly file: AgentConfigFile;
  /** The file with every default applied. */
  readonly config: AgentConfig;
}

export interface LoadConfigOptions {
  /** Source of the default agent name; the host name unless a test says otherwise. */
  readonly hostname?: () => string;
}

/**
 * Reads and validates the config file, read-only: a missing file means defaults (no directory or
 * file is created), and an invalid file is reported with every problem and left exactly as it was.
 * The work is synchronous (one small file); any error is a rejection of the returned promise.
 */
export function loadConfig(path: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  return new Promise((done) => {
    done(load(path, options));
  });
}

function load(path: string, options: LoadConfigOptions): LoadedConfig {
  const absolute = resolve(path);
  const context = { hostname: (options.hostname ?? osHostname)() };
  if (!isFile(absolute)) {
    return { path: absolute, exists: false, file: {}, config: applyDefaults({}, context) };
  }
  const file = readValidated(absolute);
  const inconsistent = checkConsistency(file);
  if (inconsistent.length > 0) throw new ConfigInvalidError(absolute, inconsistent);
  return { path: absolute, exists: true, file, config: applyDefaults(file, context) };
}

/** True for a file, false when nothing is there; a directory or an unreadable parent is an error. */
function isFile(absolute: string): boolean {
  try {
    if (statSync(absolute).isDirectory()) {
      throw new ConfigInvalidError(absolute, [
        {
          path: '',
          problem: 'is a directory, not a file',
          fix: 'pass the path of the JSON file with --config',
        },
      ]);
    }
    return true;
  } catch (e: unknown) {
    if (hasCode(e, 'ENOENT') || hasCode(e, 'ENOTDIR')) return false;
    throw readError(absolute, e);
  }
}

function readValidated(absolute: string): AgentConfigFile {
  let text: string;
  try {
    text = readFileSync(absolute, 'utf8');
  } catch (e: unknown) {
    throw readError(absolute, e);
  }
  let parsed: unknown;
  try {
    parsed = parseConfigJson(text);
  } catch (e: unknown) {
    if (e instanceof JsonSyntaxError) throw new ConfigInvalidError(absolute, [e.problem], e);
    throw readError(absolute, e);
  }
  const violations = schemaViolations(configSchema, parsed);
  if (violations.length > 0) {
    throw new ConfigInvalidError(absolute, problemsFromViolations(violations, parsed, configSchema));
  }
  return parsed as AgentConfigFile;
}

function readError(absolute: string, e: unknown): AgentError {
  if (e instanceof AgentError) return e;
  if (hasCode(e, 'EACCES') || hasCode(e, 'EPERM')) {
    return new AgentError('PERMISSION_DENIED', `cannot read config file ${absolute}: permission denied`, {
      hint: 'run as root (sudo) or make the file readable by this user',
      cause: e,
    });
  }
  return new AgentError('CONFIG_INVALID', `cannot read config file ${absolute}: ${describe(e)}`, {
    cause: e,
  });
}

function hasCode(e: unknown, code: string): boolean {
  return typeof e === 'object' && e !== null && 'code' in e && e.code === code;
}
