import { statSync } from 'node:fs';
import { constants, hostname as osHostname } from 'node:os';
import { basename, dirname, resolve } from 'node:path';
import type Conf from 'conf';
import { AgentError, describe } from '../errors/index.js';
import type { AgentConfig, AgentConfigFile } from './agent-config.js';
import { checkConsistency } from './check-consistency.js';
import { ConfigInvalidError } from './config-invalid-error.js';
import { problemsFromSchemaViolation } from './config-problems.js';
import { configSchema } from './config-schema.js';
import { applyDefaults } from './defaults.js';
import { JsonSyntaxError, parseConfigJson } from './json-syntax.js';

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
 * conf (and its Ajv) is imported here, on first use, so commands that never read config start fast.
 */
export async function loadConfig(path: string, options: LoadConfigOptions = {}): Promise<LoadedConfig> {
  const absolute = resolve(path);
  const context = { hostname: (options.hostname ?? osHostname)() };
  if (!isFile(absolute)) {
    return { path: absolute, exists: false, file: {}, config: applyDefaults({}, context) };
  }
  const file = await readValidated(absolute);
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

async function readValidated(absolute: string): Promise<AgentConfigFile> {
  const ConfClass = await importConf();
  const { properties, ...rootSchema } = configSchema;
  const name = basename(absolute);
  const isJson = name.endsWith('.json');
  // conf validates what it parses; keeping our own reference means errors can be explained from
  // the very data that failed, without reading the file a second time.
  let parsed: unknown;
  try {
    const conf = new ConfClass<Record<string, unknown>>({
      cwd: dirname(absolute),
      configName: isJson ? name.slice(0, -'.json'.length) : name,
      fileExtension: isJson ? 'json' : '',
      schema: properties ?? {},
      rootSchema,
      // Never let conf "repair" a file by emptying it, fill defaults into it, or watch it.
      clearInvalidConfig: false,
      watch: false,
      ajvOptions: { useDefaults: false, strict: true },
      deserialize: (text: string): Record<string, unknown> => {
        parsed = parseConfigJson(text);
        return parsed as Record<string, unknown>;
      },
    });
    if (conf.path !== absolute) {
      throw new AgentError('INTERNAL', `conf resolved ${absolute} to ${conf.path}`);
    }
  } catch (e: unknown) {
    if (e instanceof JsonSyntaxError) throw new ConfigInvalidError(absolute, [e.problem], e);
    if (e instanceof Error && e.message.startsWith('Config schema violation:')) {
      throw new ConfigInvalidError(absolute, problemsFromSchemaViolation(e.message, parsed, configSchema), e);
    }
    throw readError(absolute, e);
  }
  return parsed as AgentConfigFile;
}

/**
 * conf → atomically → when-exit hooks SIGTERM, SIGINT, SIGHUP and a dozen other signals the moment
 * it is first evaluated, and re-raises the signal after running its cleanups (temp files of atomic
 * writes). We never write through conf, so there is nothing to clean up, while the daemon must own
 * its signals (graceful shutdown, reload): take back exactly the listeners that import added.
 */
async function importConf(): Promise<typeof Conf> {
  const signals = Object.keys(constants.signals) as NodeJS.Signals[];
  const before = new Map(signals.map((s) => [s, new Set(process.listeners(s))]));
  const { default: conf } = await import('conf');
  for (const s of signals) {
    for (const listener of process.listeners(s)) {
      if (!before.get(s)?.has(listener)) process.removeListener(s, listener);
    }
  }
  return conf;
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
