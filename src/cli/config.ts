import { Command } from 'commander';
import { AgentError } from '../errors/index.js';
import { ConfigInvalidError, configSchema, loadConfig } from '../config/index.js';
import type { ConfigProblem, LoadedConfig } from '../config/index.js';
import { globalOptions, printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { ExitCode, SilentExit } from './exit-codes.js';

/** `nsm-agent config …`: check, show and describe the declarative config; never writes it. */
export function configCommand(io: CliIo): Command {
  const config = new Command('config')
    .summary('validate, show and describe the config')
    .description(
      'check and show the declarative config (default /etc/nsm-agent/config.json, or --config / $NSM_AGENT_CONFIG)',
    );
  config
    .command('validate')
    .description(
      'check the config file against the schema; exit 0 if it is good, 1 with every problem if not',
    )
    .option('--json', 'machine-readable JSON on stdout: {ok, path, problems}')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      await validate(io, globalOptions(cmd, io).configPath, opts.json === true);
    });
  config
    .command('show')
    .description('print the effective config: the file with every default applied')
    .option('--json', 'the effective config as JSON on stdout (itself a valid config file)')
    .action(async (opts: { json?: boolean }, cmd: Command) => {
      const loaded = await loadConfig(globalOptions(cmd, io).configPath);
      if (opts.json) printJson(io, loaded.config);
      else showHuman(io, loaded);
    });
  config
    .command('schema')
    .description('print the JSON schema of the config file (for editors: "$schema" in the file)')
    .action(() => {
      printJson(io, configSchema);
    });
  return config;
}

interface ValidateResult {
  readonly ok: boolean;
  readonly path: string;
  readonly problems: readonly ConfigProblem[];
}

async function validate(io: CliIo, path: string, json: boolean): Promise<void> {
  const { result, error } = await check(path);
  if (json) {
    printJson(io, result);
    if (!result.ok) throw new SilentExit(ExitCode.failure);
  } else if (error !== undefined) {
    // runCli prints it on stderr: the file, each bad field, what was expected, and the fix.
    throw error;
  } else {
    printLine(io.stdout, `config OK: ${result.path}`);
  }
}

async function check(path: string): Promise<{ result: ValidateResult; error?: AgentError }> {
  try {
    const loaded = await loadConfig(path);
    if (loaded.exists) return { result: { ok: true, path: loaded.path, problems: [] } };
    // Validating a file that is not there is almost always a wrong --config path: not "OK".
    const fix =
      'the agent runs on built-in defaults without a file; to start one: nsm-agent config show --json';
    return {
      result: { ok: false, path: loaded.path, problems: [{ path: '', problem: 'does not exist', fix }] },
      error: new AgentError('NOT_FOUND', `config file ${loaded.path} does not exist`, { hint: fix }),
    };
  } catch (e: unknown) {
    // Only an invalid file is a validation result; an unreadable one is an ordinary failure.
    if (!(e instanceof ConfigInvalidError)) throw e;
    return { result: { ok: false, path: e.file, problems: e.problems }, error: e };
  }
}

/** `key = value` lines, marking what came from defaults, so a person sees what the file changes. */
function showHuman(io: CliIo, loaded: LoadedConfig): void {
  const source = loaded.exists ? loaded.path : `${loaded.path} (no such file: built-in defaults only)`;
  printLine(io.stdout, `# effective config from ${source}`);
  const fromFile = new Set(flatten(loaded.file).map(([k]) => k));
  const rows = flatten(loaded.config);
  const width = Math.max(...rows.map(([k]) => k.length));
  for (const [key, value] of rows) {
    const mark = fromFile.has(key) ? '' : '  (default)';
    printLine(io.stdout, `${key.padEnd(width)} = ${value}${mark}`);
  }
}

function flatten(value: unknown, prefix = ''): [string, string][] {
  if (Array.isArray(value)) {
    if (value.length === 0) return [[prefix, '[]']];
    return value.flatMap((v: unknown, i) => flatten(v, `${prefix}[${i}]`));
  }
  if (typeof value === 'object' && value !== null) {
    const entries = Object.entries(value);
    if (entries.length === 0) return prefix === '' ? [] : [[prefix, '{}']];
    return entries.flatMap(([k, v]) => flatten(v, prefix === '' ? k : `${prefix}.${k}`));
  }
  return [[prefix, JSON.stringify(value)]];
}
