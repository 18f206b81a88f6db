import { AgentError } from '../../errors/index.js';

/** A SPIFFE ID split into its parts; `id` is the full `spiffe://<trust-domain><path>` text. */
export interface SpiffeId {
  readonly id: string;
  readonly trustDomain: string;
  readonly path: string;
}

// SPIFFE-ID spec §2: trust domain [a-z0-9.-_]; path segments [a-zA-Z0-9.-_], no "." or "..",
// no empty segment, no trailing slash. No port, user info, query or fragment anywhere.
const TRUST_DOMAIN_RE = /^[a-z0-9._-]+$/;
const SEGMENT_RE = /^[a-zA-Z0-9._-]+$/;
const MAX_ID_LENGTH = 2048;

/**
 * Parses and validates a SPIFFE ID. SVIDs always name a workload, so a bare trust domain
 * (`spiffe://td`) is rejected too (X509-SVID §5.2, reliability R7).
 */
export function parseSpiffeId(id: string): SpiffeId {
  const bad = (why: string): AgentError =>
    new AgentError('INVALID_ARGUMENT', `"${id}" is not a valid SPIFFE ID: ${why}`, {
      hint: 'expected spiffe://<trust-domain>/<path>, e.g. spiffe://mesh.example/agent/host-1',
    });
  if (id.length > MAX_ID_LENGTH) throw bad(`longer than ${MAX_ID_LENGTH} characters`);
  if (!id.startsWith('spiffe://')) throw bad('the scheme must be spiffe://');
  const rest = id.slice('spiffe://'.length);
  const slash = rest.indexOf('/');
  const trustDomain = slash === -1 ? rest : rest.slice(0, slash);
  const path = slash === -1 ? '' : rest.slice(slash);
  if (trustDomain === '') throw bad('the trust domain is empty');
  if (!TRUST_DOMAIN_RE.test(trustDomain))
    throw bad('the trust domain may only hold a-z, 0-9, ".", "-" and "_"');
  if (path === '') throw bad('the path is empty');
  for (const segment of path.slice(1).split('/')) {
    if (segment === '') throw bad('the path has an empty segment or a trailing slash');
    if (segment === '.' || segment === '..') throw bad('the path may not contain "." or ".." segments');
    if (!SEGMENT_RE.test(segment)) throw bad('path segments may only hold a-z, A-Z, 0-9, ".", "-" and "_"');
  }
  return { id, trustDomain, path };
}
