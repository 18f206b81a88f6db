export { authorizeClient } from './client.js';
export type { AuthorizeClientOptions, AuthorizeServerOptions } from './options.js';
export {
  DEFAULT_CLIENT_POLICIES,
  DEFAULT_SERVER_POLICIES,
  evaluateConnectionPolicies,
  nextTokenSigned,
  prevTokenSigned,
  refusalError,
  requesterOf,
  tokensChained,
  tokensExpired,
  tokensValid,
} from './policies.js';
export type { ConnectionPolicy, ConnectionPolicyInput } from './policies.js';
export { authorizeServer } from './server.js';
export { serviceAllowedPolicy } from './service-policy.js';
export type { AllowedSpiffeIds } from './service-policy.js';
export { compileSpiffeIdPattern, matchesAnySpiffeId } from './spiffe-id-pattern.js';
export type { SpiffeIdPattern } from './spiffe-id-pattern.js';
export {
  checkNextTokenSigned,
  checkPrevTokenSigned,
  checkTokensChained,
  checkTokensExpired,
  checkTokensValid,
} from './token-policies.js';
export type {
  TokenPolicyInput,
  TokenPolicyWording,
  TokenRefusal,
  TokenRefusalCode,
} from './token-policies.js';
