export { buildProgram } from './program.js';
export { runCli } from './run-cli.js';
export { configEnvVar, globalOptions } from './cli-io.js';
export type { CliIo, GlobalOptions, TextWriter } from './cli-io.js';
export { ExitCode, exitCodeFor, SilentExit } from './exit-codes.js';
export type { ExitCodeValue } from './exit-codes.js';
export { isSingleBinary, versionInfo } from './version.js';
export type { VersionInfo } from './version.js';
