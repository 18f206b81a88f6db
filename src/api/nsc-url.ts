import { create } from '@bufbuild/protobuf';
import { AgentError } from '../errors/index.js';
import type { Mechanism } from './gen/connection_pb.js';
import { MechanismSchema } from './gen/connection_pb.js';
import {
  CommonParam,
  isValidInterfaceName,
  LINUX_IFNAME_MAX_LENGTH,
  MECHANISM_CLASS_OF,
  MechanismClass,
  type MechanismType,
} from './mechanisms.js';

/**
 * NSM's client URL, the form cmd-nsc takes in NSM_NETWORK_SERVICES (sdk `tools/nsurl`):
 *   <mechanism>://<network-service>[@<domain>][/<interface>][?label=value&...]
 * e.g. `kernel://my-service@my.domain/nsm-1?app=web`. The result matches what nsurl yields, so a
 * URL that works with cmd-nsc means the same here. Where Go's url.Parse would silently drop or
 * reinterpret input (a port, extra path segments, `;` in the query, a fragment) this parser
 * rejects it instead, because the string comes from a person's configuration.
 */
export interface NscUrl {
  /** cls LOCAL, type = upper-cased scheme, parameters.name = interface when the URL has one. */
  readonly mechanism: Mechanism;
  /** `ns` or `ns@domain`. */
  readonly networkService: string;
  /** From the query; a label given several times has its values joined with ','. */
  readonly labels: Record<string, string>;
}

export const NSC_URL_FORM = '<mechanism>://<network-service>[@<domain>][/<interface>][?label=value&...]';
const EXAMPLE = 'kernel://my-service@my.domain/nsm-1?app=web';

// A client URL only ever asks for a LOCAL mechanism; the forwarder picks the REMOTE one.
const LOCAL_TYPES: readonly MechanismType[] = (Object.keys(MECHANISM_CLASS_OF) as MechanismType[]).filter(
  (t) => MECHANISM_CLASS_OF[t] === MechanismClass.LOCAL,
);
const URL_RE = /^([A-Za-z][A-Za-z0-9+.-]*):\/\/([^/?#]*)(\/[^?#]*)?(?:\?([^#]*))?(#.*)?$/;
// Names are registry keys (and Kubernetes object names in k8s registries); keeping to this set
// also keeps them out of the URL syntax.
const NAME_RE = /^[A-Za-z0-9]([A-Za-z0-9._-]*[A-Za-z0-9])?$/;

/** Parses one client URL; throws INVALID_ARGUMENT naming the problem and showing the valid form. */
export function parseNscUrl(url: string): NscUrl {
  const m = URL_RE.exec(url.trim());
  if (!m) fail(url, 'it is not of the form <mechanism>://<network-service>');
  const [, scheme = '', authority = '', path, query, fragment] = m;
  if (fragment !== undefined) fail(url, 'a "#" fragment has no meaning here');

  const type = scheme.toUpperCase();
  if (!(LOCAL_TYPES as readonly string[]).includes(type)) {
    fail(
      url,
      `mechanism "${scheme}" is not a client mechanism; use one of ${LOCAL_TYPES.map((t) => t.toLowerCase()).join(', ')}`,
    );
  }

  const mechanism = create(MechanismSchema, { cls: MechanismClass.LOCAL, type });
  const ifname = parseInterface(url, path);
  if (ifname !== undefined) mechanism.parameters[CommonParam.INTERFACE_NAME] = ifname;

  return { mechanism, networkService: parseNetworkService(url, authority), labels: parseLabels(url, query) };
}

function parseNetworkService(url: string, authority: string): string {
  if (authority === '') fail(url, 'the network service name is missing');
  if (authority.includes(':')) fail(url, `"${authority}" has a ":"; a network service URL has no port`);
  const parts = authority.split('@');
  if (parts.length > 2) fail(url, `"${authority}" has more than one "@"; write <network-service>@<domain>`);
  const [name = '', domain] = parts;
  if (!NAME_RE.test(name)) {
    fail(
      url,
      `network service "${name}" must be letters, digits, '.', '_' or '-', starting and ending alphanumeric`,
    );
  }
  if (domain !== undefined && !NAME_RE.test(domain)) {
    fail(url, `domain "${domain}" must be a DNS name like my.cluster2`);
  }
  return authority;
}

function parseInterface(url: string, path: string | undefined): string | undefined {
  // "kernel://ns" and "kernel://ns/" both leave the name to the forwarder.
  if (path === undefined || path === '/') return undefined;
  const segments = path.slice(1).split('/');
  if (segments.length > 1) fail(url, `"${path}" has more than one path segment; give just /<interface>`);
  const name = decode(url, segments[0] ?? '', false);
  if (!isValidInterfaceName(name)) {
    fail(
      url,
      `interface name "${name}" must be 1..${LINUX_IFNAME_MAX_LENGTH} bytes without '/', ':' or spaces`,
    );
  }
  return name;
}

function parseLabels(url: string, query: string | undefined): Record<string, string> {
  const labels = new Map<string, string[]>();
  if (query === undefined) return {};
  if (query.includes(';')) fail(url, 'separate labels with "&", not ";"');
  for (const pair of query.split('&')) {
    if (pair === '') continue;
    const eq = pair.indexOf('=');
    const key = decode(url, eq < 0 ? pair : pair.slice(0, eq), true);
    const value = eq < 0 ? '' : decode(url, pair.slice(eq + 1), true);
    if (key === '') fail(url, `label "${pair}" has no name; write name=value`);
    const values = labels.get(key);
    if (values) values.push(value);
    else labels.set(key, [value]);
  }
  // fromEntries, not assignment: a label called "__proto__" must stay an ordinary key.
  return Object.fromEntries([...labels].map(([k, v]) => [k, v.join(',')]));
}

/** %XX decoding as Go's url package does it; '+' means a space only in the query. */
function decode(url: string, s: string, plusIsSpace: boolean): string {
  try {
    return decodeURIComponent(plusIsSpace ? s.replaceAll('+', ' ') : s);
  } catch (e: unknown) {
    if (e instanceof URIError) fail(url, `"${s}" has a bad %-escape; write %XX with two hex digits`);
    throw e;
  }
}

function fail(url: string, why: string): never {
  throw new AgentError('INVALID_ARGUMENT', `invalid network service URL ${JSON.stringify(url)}: ${why}`, {
    hint: `write ${NSC_URL_FORM}, e.g. ${EXAMPLE}`,
    details: { url },
  });
}
