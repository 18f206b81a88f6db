export * from './ipam/index.js';
export * from './dns/index.js';
export { WorkloadSpecs, workloadsFileName, workloadsFileVersion } from './specs.js';
export type {
  SourcedConnect,
  SourcedExpose,
  SpecSource,
  SpecsLoadReport,
  WorkloadSpecsOptions,
} from './specs.js';
export {
  connectKey,
  connectionId,
  describeConnect,
  endpointName,
  normalizeConnect,
  normalizeExpose,
} from './spec-validation.js';
export type { ConnectInput, ExposeInput } from './spec-validation.js';
