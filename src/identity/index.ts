/**
 * Mesh identity: the control server's CA and enrolment service, enrolment tokens, enrolled hosts,
 * and the agent side of enrolment (DESIGN §5, reliability §1.8).
 */
export { initCa, DEFAULT_CA_TTL_MS, DEFAULT_SERVER_SVID_TTL_MS } from './ca/init-ca.js';
export type { InitCaOptions } from './ca/init-ca.js';
export { loadCa } from './ca/load-ca.js';
export { issueSvid } from './ca/issue-svid.js';
export type { IssueSvidOptions, SvidSubjectKey } from './ca/issue-svid.js';
export { parseAgentCsr, MAX_CSR_BYTES } from './ca/agent-csr.js';
export type { AgentCsr } from './ca/agent-csr.js';
export { agentSpiffeId, caFiles, serverSpiffeId } from './ca/mesh-ca.js';
export type { IssuedSvid, MeshCa, ServerPki, SvidWithKey } from './ca/mesh-ca.js';
export { createAgentCsr } from './crypto/create-csr.js';
export { describeKey, formatPin, generateEcKeyPair, importEcKeyPair, spkiSha256 } from './crypto/ec-keys.js';
export type { EcKeyPair } from './crypto/ec-keys.js';
export { TOKEN_PREFIX, formatToken, parseToken } from './tokens/token-format.js';
export type { EnrolmentToken } from './tokens/token-format.js';
export { DEFAULT_TOKEN_TTL_MS, TokenStore } from './tokens/token-store.js';
export type { CreateTokenOptions, CreatedToken, TokenStoreOptions } from './tokens/token-store.js';
export type { TokenInfo } from './tokens/token-record.js';
export { HostStore } from './hosts/host-store.js';
export type { HostStoreOptions, NewHost } from './hosts/host-store.js';
export type { HostFactsRecord, HostRecord } from './hosts/host-record.js';
export { enrolmentService, DEFAULT_AGENT_SVID_TTL_MS } from './enrolment/enrolment-service.js';
export type { EnrolmentServiceOptions } from './enrolment/enrolment-service.js';
export { enrolmentServerCredentials } from './enrolment/enrolment-credentials.js';
export { enrollHost } from './client/enroll-host.js';
export type { EnrolStep, EnrolledIdentity, EnrollHostOptions } from './client/enroll-host.js';
export { renewHost } from './client/renew-host.js';
export type { RenewHostOptions } from './client/renew-host.js';
export { fetchPinnedCa } from './client/fetch-server-ca.js';
export type { PinnedCa } from './client/fetch-server-ca.js';
export { loadAgentIdentity, readIdentityState } from './client/identity-state.js';
export type { AgentIdentity, IdentityState } from './client/identity-state.js';
export { identityFiles } from './client/identity-files.js';
export type { IdentityMeta, RevokedMarker } from './client/identity-files.js';
export { issueToolIdentity, DEFAULT_TOOL_SVID_TTL_MS } from './tools/issue-tool-identity.js';
export type { IssueToolIdentityOptions, ToolIdentityFiles } from './tools/issue-tool-identity.js';
export { refreshServerSvid } from './ca/refresh-server-svid.js';
export { keepServerSvidFresh } from './ca/server-svid-refresh.js';
export type { ServerSvidRefreshOptions } from './ca/server-svid-refresh.js';
export type { RefreshServerSvidOptions } from './ca/refresh-server-svid.js';
export { renewalTime } from './client/renewal-schedule.js';
export { adminSpiffeIds, enrolmentAdminService } from './enrolment/admin-service.js';
export type { AuthorizeAdmin, EnrolmentAdminServiceOptions } from './enrolment/admin-service.js';
