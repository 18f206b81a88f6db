import { AgentError } from '../../errors/agent-error.js';

/**
 * A glob over SPIFFE IDs, for "who may connect to this service" (expose --allow):
 *   `*`  any run of characters within one path segment (not `/`),
 *   `**` any run of characters including `/` (whole subtrees),
 * everything else literal. The pattern must name the scheme and trust domain
 * (`spiffe://mesh.example/agent/*`); a bare `*` would let every trust domain in, so it is refused.
 */
export interface SpiffeIdPattern {
  readonly pattern: string;
  matches(spiffeId: string): boolean;
}

export function compileSpiffeIdPattern(pattern: string): SpiffeIdPattern {
  const m = /^spiffe:\/\/([^/*]+)(\/.*)?$/.exec(pattern);
  if (!m) {
    throw new AgentError(
      'CONFIG_INVALID',
      `"${pattern}" is not a SPIFFE ID pattern: it must start with spiffe://<trust domain>`,
      {
        hint: 'write e.g. spiffe://mesh.example/agent/* (one segment) or spiffe://mesh.example/** (the whole trust domain)',
      },
    );
  }
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern.charAt(i);
    if (c === '*' && pattern.charAt(i + 1) === '*') {
      source += '.*';
      i++;
    } else if (c === '*') {
      source += '[^/]*';
    } else {
      source += c.replace(/[.+?^${}()|[\]\\]/g, '\\$&');
    }
  }
  const re = new RegExp(`^${source}$`);
  return { pattern, matches: (spiffeId) => re.test(spiffeId) };
}

/** True when `spiffeId` matches any of `patterns`. */
export function matchesAnySpiffeId(patterns: readonly SpiffeIdPattern[], spiffeId: string): boolean {
  return patterns.some((p) => p.matches(spiffeId));
}
