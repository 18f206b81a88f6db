export { isSubset } from './is-subset.js';
export type { Labels } from './is-subset.js';
export { matchEndpoint } from './match-endpoint.js';
export { GO_NO_VALUE, renderSelectorValue } from './selector-template.js';
