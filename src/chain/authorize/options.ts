import type { X509Certificate } from 'node:crypto';
import type { ChainContext } from '../core/context.js';
import type { ConnectionPolicy } from './policies.js';

export interface AuthorizeServerOptions {
  /** Replaces the shipped set (common/* + server/*); `[]` is upstream's `Any()`, for tests only. */
  readonly policies?: readonly ConnectionPolicy[];
  /** Checked after `policies`: the hook for service policy by SPIFFE ID (serviceAllowedPolicy). */
  readonly extra?: readonly ConnectionPolicy[];
}

export interface AuthorizeClientOptions {
  /** Replaces the shipped set (common/* + client/*). */
  readonly policies?: readonly ConnectionPolicy[];
  readonly extra?: readonly ConnectionPolicy[];
  /**
   * The certificate the server we call presented (its SVID leaf), for next_token_signed. The element
   * that dials knows it; without it next_token_signed refuses, as upstream does without TLS.
   */
  readonly serverCertificate?: (ctx: ChainContext) => X509Certificate | undefined;
}
