import { createHash } from 'node:crypto';
import { compileSpiffeIdPattern } from '../chain/index.js';
import type { ConnectSpec, ExposeSpec, Labels } from '../config/index.js';
import { configDefaults } from '../config/index.js';
import { AgentError } from '../errors/index.js';
import { netnsPath, parseNetnsRef } from '../host/index.js';
import { parsePrefix } from '../util/ip-prefix.js';
import { ServiceIpam } from './ipam/service-ipam.js';

/** A connect as the CLI (or a stored file) gives it: labels optional. */
export interface ConnectInput {
  readonly service: string;
  readonly netns?: string;
  readonly labels?: Labels;
}

/** An expose as the CLI gives it: cidr defaults to NSM's 169.254.0.0/16, no allow = the whole mesh. */
export interface ExposeInput {
  readonly service: string;
  readonly cidr?: string;
  readonly labels?: Labels;
  readonly allow?: readonly string[];
}

const dnsLabel = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const domain = '[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?';
const exposeServicePattern = new RegExp(`^${dnsLabel}$`);
const connectServicePattern = new RegExp(`^${dnsLabel}(?:@${domain})?$`);
const labelKeyPattern = /^[A-Za-z0-9][A-Za-z0-9_./-]*$/;

/** A validated connect with its netns in one spelling (`blue`, not `/run/netns/blue`). */
export function normalizeConnect(input: ConnectInput): ConnectSpec {
  checkService(input.service, connectServicePattern, 'connect');
  const netns = input.netns === undefined ? undefined : normalizeNetns(input.netns);
  return {
    service: input.service,
    ...(netns === undefined ? {} : { netns }),
    labels: checkLabels(input.labels ?? {}),
  };
}

export function normalizeExpose(input: ExposeInput): ExposeSpec {
  checkService(input.service, exposeServicePattern, 'expose');
  const cidr = checkCidr(input.service, input.cidr ?? configDefaults.exposeCidr);
  const allow = input.allow === undefined || input.allow.length === 0 ? undefined : checkAllow(input.allow);
  return {
    service: input.service,
    cidr,
    labels: checkLabels(input.labels ?? {}),
    ...(allow === undefined ? {} : { allow }),
  };
}

/**
 * What makes two connects the same: the service and the netns (the host's own when absent), by
 * the path the netns resolves to, so `blue` and `/run/netns/blue` are one connect.
 */
export function connectKey(spec: Pick<ConnectSpec, 'service' | 'netns'>): string {
  return `${spec.service}\u0000${netnsIdentity(spec.netns)}`;
}

/** `"web"` or `"web" in netns blue`, for messages. */
export function describeConnect(spec: Pick<ConnectSpec, 'service' | 'netns'>): string {
  return spec.netns === undefined
    ? JSON.stringify(spec.service)
    : `${JSON.stringify(spec.service)} in netns ${spec.netns}`;
}

/**
 * The client connection id of a connect, the same on every start of the agent for the same spec,
 * so the endpoint's IPAM (keyed by it) gives the consumer back its address after either side restarts.
 */
export function connectionId(spec: Pick<ConnectSpec, 'service' | 'netns'>, agentName: string): string {
  const where =
    spec.netns === undefined
      ? 'host'
      : createHash('sha256').update(netnsIdentity(spec.netns)).digest('hex').slice(0, 8);
  return `${agentName}-${spec.service}-${where}`;
}

/** The NSE name an agent registers for a service it exposes. */
export function endpointName(agentName: string, service: string): string {
  return `${agentName}-${service}`;
}

function netnsIdentity(netns: string | undefined): string {
  if (netns === undefined) return '';
  try {
    return netnsPath(parseNetnsRef(netns));
  } catch {
    return netns; // not reached for validated specs; still a stable key
  }
}

function checkService(service: string, pattern: RegExp, verb: 'connect' | 'expose'): void {
  if (pattern.test(service)) return;
  const lower = service.toLowerCase();
  throw new AgentError(
    'INVALID_ARGUMENT',
    `${JSON.stringify(service)} is not a valid service name to ${verb}`,
    {
      hint:
        (verb === 'expose'
          ? 'use a lowercase DNS label: a-z, 0-9 and "-", at most 63, starting and ending with a letter or digit (it becomes <service>.nsm)'
          : 'use a lowercase DNS label (a-z, 0-9 and "-", at most 63), optionally @<domain> for a service of another mesh') +
        (lower !== service && pattern.test(lower) ? `; did you mean ${JSON.stringify(lower)}?` : ''),
    },
  );
}

function normalizeNetns(netns: string): string {
  let ref;
  try {
    ref = parseNetnsRef(netns);
  } catch (e: unknown) {
    throw new AgentError('INVALID_ARGUMENT', `${JSON.stringify(netns)} is not a network namespace`, {
      hint: 'give a name under /run/netns (as `ip netns add` makes) or an absolute path such as /proc/<pid>/ns/net',
      cause: e,
    });
  }
  switch (ref.kind) {
    case 'named':
      return ref.name;
    case 'pid':
    case 'path':
      return netnsPath(ref);
  }
}

function checkCidr(service: string, cidr: string): string {
  const p = parsePrefix(cidr);
  if (p?.hostBitsSet) {
    throw new AgentError('INVALID_ARGUMENT', `--cidr ${cidr} has host bits set`, {
      hint: `give the network address: --cidr ${p.text}`,
    });
  }
  // The IPAM says whether the range parses and is big enough, in its own words.
  return new ServiceIpam({ service, cidr }).cidr;
}

function checkAllow(patterns: readonly string[]): string[] {
  return patterns.map((p) => {
    try {
      return compileSpiffeIdPattern(p).pattern;
    } catch (e: unknown) {
      if (!AgentError.is(e)) throw e;
      throw new AgentError('INVALID_ARGUMENT', `--allow ${p}: ${withoutHint(e)}`, {
        ...(e.hint === undefined ? {} : { hint: e.hint }),
        cause: e,
      });
    }
  });
}

function withoutHint(e: AgentError): string {
  const tail = e.hint === undefined ? '' : `; ${e.hint}`;
  return tail !== '' && e.message.endsWith(tail) ? e.message.slice(0, -tail.length) : e.message;
}

function checkLabels(labels: Labels): Labels {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(labels)) {
    if (k.length > 253 || !labelKeyPattern.test(k)) {
      throw new AgentError('INVALID_ARGUMENT', `label key ${JSON.stringify(k)} is not valid`, {
        hint: 'label keys are letters, digits and ._/- and start with a letter or digit (--label key=value)',
      });
    }
    if (typeof (v as unknown) !== 'string' || v.length > 256) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `label ${k} has a value that is not a string of at most 256 characters`,
        {
          hint: 'shorten the value (--label key=value)',
        },
      );
    }
    out[k] = v;
  }
  return out;
}
