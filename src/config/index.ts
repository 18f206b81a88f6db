// Light to import: no dependencies outside src (config validation is validate.ts, not conf + Ajv).
export { configLogLevels, updateChannels, wireguardBackends } from './agent-config.js';
export type {
  AgentConfig,
  AgentConfigFile,
  AgentSection,
  ConfigLogLevel,
  ConnectSpec,
  ExposeSpec,
  Labels,
  ListenConfig,
  LogConfig,
  MeshConfig,
  UpdateChannel,
  UpdateConfig,
  WireGuardBackend,
  WireGuardConfig,
} from './agent-config.js';
export { checkConsistency } from './check-consistency.js';
export { closestMatch, editDistance } from './closest-match.js';
export { ConfigInvalidError } from './config-invalid-error.js';
export { formatPath, formatProblem, problemsFromViolations } from './config-problems.js';
export type { ConfigProblem, PathSegment } from './config-problems.js';
export { configSchema } from './config-schema.js';
export type { JsonSchema, JsonValue } from './config-schema.js';
export { applyDefaults, configDefaults, defaultConfigPath, defaultSocketUrl } from './defaults.js';
export type { DefaultsContext } from './defaults.js';
export { parseConfigJson, JsonSyntaxError } from './json-syntax.js';
export { loadConfig } from './load-config.js';
export type { LoadConfigOptions, LoadedConfig } from './load-config.js';
export { schemaProblems, schemaViolations, supportedSchemaKeywords } from './validate.js';
export type { SchemaViolation } from './validate.js';
