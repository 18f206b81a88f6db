import type { Random } from '../../host/index.js';

/**
 * When to renew an SVID: at half its lifetime, ±10 % of the lifetime as jitter, as SPIRE does
 * (reliability §1.8), so a fleet enrolled together does not renew in step. Returns ms since the
 * epoch; never later than 90 % of the lifetime.
 */
export function renewalTime(
  svid: { readonly notBefore: number; readonly notAfter: number },
  random: Random,
): number {
  const lifetime = svid.notAfter - svid.notBefore;
  const jitter = (random.float() * 2 - 1) * 0.1 * lifetime;
  return Math.min(svid.notBefore + lifetime / 2 + jitter, svid.notBefore + 0.9 * lifetime);
}
