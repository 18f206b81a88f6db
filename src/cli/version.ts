import { Command } from 'commander';
import { agentVersion } from '../util/index.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export interface VersionInfo {
  readonly version: string;
  readonly node: string;
  readonly platform: string;
  readonly arch: string;
  /** True when running as the single-executable binary rather than from a JS file. */
  readonly singleBinary: boolean;
}

export function versionInfo(): VersionInfo {
  return {
    version: agentVersion(),
    node: process.version,
    platform: process.platform,
    arch: process.arch,
    singleBinary: isSingleBinary(),
  };
}

/**
 * node:sea exists from Node 20.12 and getBuiltinModule from 20.16; an older runtime (e.g. a custom
 * --node for the build) simply is not a single binary as far as we can tell. getBuiltinModule
 * works the same from ESM source, the CommonJS bundle and inside the binary, unlike require.
 */
export function isSingleBinary(): boolean {
  const getBuiltin = (process as { getBuiltinModule?: NodeJS.Process['getBuiltinModule'] }).getBuiltinModule;
  if (typeof getBuiltin !== 'function') return false;
  try {
    const sea = getBuiltin.call(process, 'node:sea') as { isSea?: () => boolean } | undefined;
    return sea?.isSea?.() ?? false;
  } catch {
    return false;
  }
}

export function versionCommand(io: CliIo): Command {
  return new Command('version')
    .summary('print version, runtime and build details')
    .description('print the version, the Node.js runtime and whether this is the single binary')
    .option('--json', 'machine-readable JSON on stdout')
    .action((opts: { json?: boolean }) => {
      const info = versionInfo();
      if (opts.json) {
        printJson(io, info);
        return;
      }
      printLine(io.stdout, `nsm-agent ${info.version}`);
      printLine(io.stdout, `node      ${info.node}`);
      printLine(io.stdout, `platform  ${info.platform}/${info.arch}`);
      printLine(
        io.stdout,
        `binary    ${info.singleBinary ? 'single executable' : 'no (running from JavaScript)'}`,
      );
    });
}
