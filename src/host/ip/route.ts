import { num, parseIpJson, requireStr, str } from './ip-json.js';

/**
 * A route. `table` and `protocol` are how the agent marks what it owns: its routes carry its own
 * `proto` number (and optionally live in its own table), so it can list exactly them and leave
 * everything else on the host alone.
 */
export interface Route {
  /** Destination, `default` or a prefix; a host route may come back without `/32`. */
  readonly dst: string;
  readonly dev?: string;
  readonly gateway?: string;
  /** `main`, `local` or a number as a string; absent means main. */
  readonly table?: string;
  /** `kernel`, `static`, `boot` or a number as a string (iproute2 names only well-known ones). */
  readonly protocol?: string;
  readonly metric?: number;
  readonly scope?: string;
  readonly prefsrc?: string;
  readonly type?: string;
}

/** The selector of a route listing; the same fields go into the `ip route show` arguments. */
export interface RouteFilter {
  readonly table?: string | number;
  readonly protocol?: string | number;
  /** `ip route show` lists IPv4 only unless told `-6` (`table all` lists both). */
  readonly family?: 4 | 6;
}

/**
 * Parses `ip -json route show …` output. `ip` leaves out the fields the listing was filtered by
 * (`table 100 proto 252` gives entries with neither), so they are filled in from the filter.
 */
export function parseRoutes(stdout: string, filter: RouteFilter = {}): Route[] {
  return parseIpJson(stdout, 'route show').map((o) => {
    const table =
      str(o, 'table') ??
      (filter.table === undefined || filter.table === 'all' ? undefined : String(filter.table));
    const protocol =
      str(o, 'protocol') ?? (filter.protocol === undefined ? undefined : String(filter.protocol));
    const dev = str(o, 'dev');
    const gateway = str(o, 'gateway');
    const metric = num(o, 'metric');
    const scope = str(o, 'scope');
    const prefsrc = str(o, 'prefsrc');
    const type = str(o, 'type');
    return {
      dst: requireStr(o, 'dst', 'route'),
      ...(dev === undefined ? {} : { dev }),
      ...(gateway === undefined ? {} : { gateway }),
      ...(table === undefined ? {} : { table }),
      ...(protocol === undefined ? {} : { protocol }),
      ...(metric === undefined ? {} : { metric }),
      ...(scope === undefined ? {} : { scope }),
      ...(prefsrc === undefined ? {} : { prefsrc }),
      ...(type === undefined ? {} : { type }),
    };
  });
}

/** What `ip route add|replace|del` needs; the wrapper turns it into argv. */
export interface RouteSpec {
  readonly dst: string;
  readonly dev?: string;
  readonly gateway?: string;
  readonly table?: string | number;
  readonly protocol?: string | number;
  readonly metric?: number;
  readonly scope?: string;
  readonly src?: string;
  readonly mtu?: number;
}

/** The words after `ip route <verb>` for a route (also one line of `ip -batch`). */
export function routeArgs(r: RouteSpec): string[] {
  const a = [r.dst];
  if (r.gateway !== undefined) a.push('via', r.gateway);
  if (r.dev !== undefined) a.push('dev', r.dev);
  if (r.table !== undefined) a.push('table', String(r.table));
  if (r.protocol !== undefined) a.push('proto', String(r.protocol));
  if (r.metric !== undefined) a.push('metric', String(r.metric));
  if (r.scope !== undefined) a.push('scope', r.scope);
  if (r.src !== undefined) a.push('src', r.src);
  if (r.mtu !== undefined) a.push('mtu', String(r.mtu));
  return a;
}

/** The words after `ip route show` for a filter. */
export function routeFilterArgs(f: RouteFilter): string[] {
  const a: string[] = [];
  if (f.table !== undefined) a.push('table', String(f.table));
  if (f.protocol !== undefined) a.push('proto', String(f.protocol));
  return a;
}

/** True when stderr says the listed table does not exist yet, which is an empty table, not a failure. */
export function isMissingTable(stderr: string): boolean {
  return stderr.includes('FIB table does not exist');
}
