import type { Connection, MonitorScopeSelector, PathSegment } from '../../api/index.js';

/**
 * NSM's `Connection.MatchesMonitorScopeSelector` (api connection_helpers.go; nsm-api.md §2.2):
 *  - an empty selector (no segments, no services) matches every connection;
 *  - `network_services`, when given, must contain the connection's network service;
 *  - `path_segments`, when given, must occur as a contiguous run of the connection's path, where an
 *    empty `name`, `id` or `token` in the selector matches anything.
 */
export function matchesSelector(conn: Connection, selector: MonitorScopeSelector | undefined): boolean {
  if (!selector) return true;
  const services = selector.networkServices;
  if (services.length > 0 && !services.includes(conn.networkService)) return false;
  const wanted = selector.pathSegments;
  if (wanted.length === 0) return true;
  const path = conn.path?.pathSegments ?? [];
  for (let start = 0; start + wanted.length <= path.length; start++) {
    if (wanted.every((w, j) => segmentMatches(path[start + j], w))) return true;
  }
  return false;
}

function segmentMatches(have: PathSegment | undefined, want: PathSegment): boolean {
  if (!have) return false;
  return (
    (want.name === '' || want.name === have.name) &&
    (want.id === '' || want.id === have.id) &&
    (want.token === '' || want.token === have.token)
  );
}
