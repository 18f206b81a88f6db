import { equals, NetworkServiceEndpointSchema } from '../api/index.js';
import type { NetworkServiceEndpoint } from '../api/index.js';

/**
 * Request metadata of a watching Find (`nsm-agent-omit-renewals: 1`): "do not send me puts that only
 * renew an endpoint". An NSE is re-registered every 2/3 of its expiration, so without it every
 * watcher hears every endpoint of the mesh about every 40 s — with N agents each watching M
 * endpoints that is N × M / 40 messages a second from the server, all saying nothing new. Our
 * proxy sends it and relies on the deletes the server sends when a registration expires; a
 * registry that does not know the key (NSM's) ignores it and keeps sending renewals, which the
 * proxy takes as before.
 */
export const OMIT_RENEWALS_METADATA_KEY = 'nsm-agent-omit-renewals';

/** True when `next` is `prev` re-registered: everything but expiration_time equal. */
export function isNseRenewal(prev: NetworkServiceEndpoint, next: NetworkServiceEndpoint): boolean {
  const [a, b] = [prev.expirationTime, next.expirationTime];
  // Compared without their expiries; both are put back before anything else can see them.
  prev.expirationTime = undefined;
  next.expirationTime = undefined;
  try {
    return equals(NetworkServiceEndpointSchema, prev, next);
  } finally {
    prev.expirationTime = a;
    next.expirationTime = b;
  }
}
