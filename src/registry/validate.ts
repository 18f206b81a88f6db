import { timestampToMs } from '../api/index.js';
import type { NetworkService, NetworkServiceEndpoint } from '../api/index.js';
import { parseGrpcUrl } from '../api/grpc/index.js';
import { AgentError, describe } from '../errors/index.js';

/**
 * Input checks for Register: a registry that stores whatever it is sent lets one bad peer fill the
 * store or break every Find. Each refusal is INVALID_ARGUMENT naming the field and the limit.
 */
export interface RegistryLimits {
  readonly maxNameBytes: number;
  readonly maxServiceNames: number;
  /** Labels summed over all services of an NSE, or over all selectors of an NS. */
  readonly maxLabels: number;
  readonly maxLabelKeyBytes: number;
  readonly maxLabelValueBytes: number;
  readonly maxUrlBytes: number;
  readonly maxMatches: number;
  readonly maxPathIds: number;
}

export const DEFAULT_REGISTRY_LIMITS: RegistryLimits = Object.freeze({
  maxNameBytes: 253,
  maxServiceNames: 64,
  maxLabels: 256,
  maxLabelKeyBytes: 253,
  maxLabelValueBytes: 1024,
  maxUrlBytes: 1024,
  maxMatches: 64,
  maxPathIds: 64,
});

/** What NSM knows as payloads (api `payload` package); anything else cannot be served. */
export const PAYLOADS: readonly string[] = ['IP', 'ETHERNET'];

function invalid(message: string, hint?: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', message, hint === undefined ? {} : { hint });
}

export function checkName(what: string, name: string, limits: RegistryLimits): void {
  if (name === '')
    throw invalid(
      `${what} name is empty`,
      `set ${what === 'network service' ? 'NetworkService' : 'NetworkServiceEndpoint'}.name`,
    );
  if (Buffer.byteLength(name) > limits.maxNameBytes) {
    throw invalid(`${what} name is longer than ${limits.maxNameBytes} bytes`);
  }
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f\u007f]/.test(name))
    throw invalid(`${what} name "${JSON.stringify(name).slice(1, -1)}" contains control characters`);
}

function checkLabels(
  where: string,
  labels: Readonly<Record<string, string>>,
  limits: RegistryLimits,
): number {
  let n = 0;
  for (const [k, v] of Object.entries(labels)) {
    n++;
    if (k === '') throw invalid(`${where} has a label with an empty key`);
    if (Buffer.byteLength(k) > limits.maxLabelKeyBytes) {
      throw invalid(`${where} has a label key longer than ${limits.maxLabelKeyBytes} bytes`);
    }
    if (Buffer.byteLength(v) > limits.maxLabelValueBytes) {
      throw invalid(`${where} label "${k}" has a value longer than ${limits.maxLabelValueBytes} bytes`);
    }
  }
  return n;
}

/**
 * Endpoint URLs are dialed by forwarders and nsmgrs: `tcp://host:port` (a real host and port) or
 * `unix:///path`; `inode://dev/ino` is what NSM's fd passing puts on the wire (docs/nsm-api.md §4.10).
 */
export function checkEndpointUrl(url: string, limits: RegistryLimits): void {
  const hint =
    'use tcp://<host>:<port> (the address peers dial), unix:///path/to.sock, or inode://<dev>/<ino>';
  if (url === '') throw invalid('network service endpoint url is empty', hint);
  if (Buffer.byteLength(url) > limits.maxUrlBytes)
    throw invalid(`url is longer than ${limits.maxUrlBytes} bytes`, hint);
  if (url.startsWith('inode://')) {
    if (!/^inode:\/\/\d+\/\d+$/.test(url)) throw invalid(`url "${url}" is not inode://<dev>/<ino>`, hint);
    return;
  }
  let parsed;
  try {
    parsed = parseGrpcUrl(url);
  } catch (e: unknown) {
    throw new AgentError('INVALID_ARGUMENT', `url "${url}" is not usable: ${describe(e)}`, { cause: e });
  }
  if (parsed.kind === 'tcp' && (parsed.host === '' || parsed.port === 0)) {
    throw invalid(`url "${url}" has no host or port 0: peers cannot dial it`, hint);
  }
}

export function checkNetworkServiceEndpoint(nse: NetworkServiceEndpoint, limits: RegistryLimits): void {
  checkName('network service endpoint', nse.name, limits);
  checkEndpointUrl(nse.url, limits);
  if (nse.networkServiceNames.length > limits.maxServiceNames) {
    throw invalid(
      `network_service_names has ${nse.networkServiceNames.length} entries, the limit is ${limits.maxServiceNames}`,
    );
  }
  for (const s of nse.networkServiceNames) checkName('network service', s, limits);
  const services = Object.entries(nse.networkServiceLabels);
  if (services.length > limits.maxServiceNames) {
    throw invalid(
      `network_service_labels has ${services.length} services, the limit is ${limits.maxServiceNames}`,
    );
  }
  let total = 0;
  for (const [service, l] of services) {
    total += checkLabels(`network_service_labels["${service}"]`, l.labels, limits);
    if (total > limits.maxLabels) {
      throw invalid(
        `network_service_labels hold more than ${limits.maxLabels} labels in total`,
        'keep labels to what endpoint selection needs',
      );
    }
  }
  if (nse.expirationTime) timestampToMs(nse.expirationTime);
  if (nse.initialRegistrationTime) timestampToMs(nse.initialRegistrationTime);
  if (nse.pathIds.length > limits.maxPathIds)
    throw invalid(`path_ids has more than ${limits.maxPathIds} entries`);
}

export function checkNetworkService(ns: NetworkService, limits: RegistryLimits): void {
  checkName('network service', ns.name, limits);
  if (ns.payload !== '' && !PAYLOADS.includes(ns.payload)) {
    throw invalid(
      `payload "${ns.payload}" is not one NSM knows`,
      `use ${PAYLOADS.join(' or ')}, or leave it empty for IP`,
    );
  }
  if (ns.matches.length > limits.maxMatches)
    throw invalid(`matches has ${ns.matches.length} entries, the limit is ${limits.maxMatches}`);
  let total = 0;
  ns.matches.forEach((m, i) => {
    total += checkLabels(`matches[${i}].source_selector`, m.sourceSelector, limits);
    total += checkLabels(`matches[${i}].metadata.labels`, m.metadata?.labels ?? {}, limits);
    m.routes.forEach((r, j) => {
      total += checkLabels(`matches[${i}].routes[${j}].destination_selector`, r.destinationSelector, limits);
    });
    if (total > limits.maxLabels)
      throw invalid(`matches hold more than ${limits.maxLabels} selector labels in total`);
  });
  if (ns.pathIds.length > limits.maxPathIds)
    throw invalid(`path_ids has more than ${limits.maxPathIds} entries`);
}
