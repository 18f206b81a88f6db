import { isIP } from 'node:net';
import { AgentError } from '../errors/index.js';
import type { ConnectRequest, DisconnectRequest, ExposeRequest, UnexposeRequest } from './agent-control.js';

/**
 * Checks of the local API's request bodies, done before the daemon sees them, so a hand-written
 * `curl` body gets the same clear answer as a wrong CLI flag. Unknown fields are refused: a
 * misspelt `"lables"` would otherwise connect without the labels the user meant.
 */

/** A network service name: a lowercase DNS label (it becomes `<service>.nsm`). */
const serviceName = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function parseConnectRequest(body: unknown): ConnectRequest {
  const o = object(body, ['service', 'netns', 'labels']);
  const netns = optionalNetns(o['netns']);
  return {
    service: service(o['service']),
    ...(netns === undefined ? {} : { netns }),
    labels: labels(o['labels']),
  };
}

export function parseDisconnectRequest(body: unknown): DisconnectRequest {
  const o = object(body, ['service', 'netns']);
  const netns = optionalNetns(o['netns']);
  return { service: service(o['service']), ...(netns === undefined ? {} : { netns }) };
}

export function parseExposeRequest(body: unknown): ExposeRequest {
  const o = object(body, ['service', 'cidr', 'labels', 'allow']);
  const cidr = optionalCidr(o['cidr']);
  const allow = optionalStrings(o['allow'], 'allow');
  return {
    service: service(o['service']),
    ...(cidr === undefined ? {} : { cidr }),
    labels: labels(o['labels']),
    ...(allow === undefined ? {} : { allow }),
  };
}

export function parseUnexposeRequest(body: unknown): UnexposeRequest {
  const o = object(body, ['service']);
  return { service: service(o['service']) };
}

function invalid(message: string, hint: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', message, { hint });
}

function object(body: unknown, fields: readonly string[]): Record<string, unknown> {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) {
    throw invalid('the request body must be a JSON object', `send an object with: ${fields.join(', ')}`);
  }
  const o = body as Record<string, unknown>;
  const unknown = Object.keys(o).filter((k) => !fields.includes(k));
  if (unknown.length > 0) {
    throw invalid(
      `unknown field${unknown.length > 1 ? 's' : ''} ${unknown.map((k) => `'${k}'`).join(', ')} in the request`,
      `the fields of this request are: ${fields.join(', ')}`,
    );
  }
  return o;
}

function service(value: unknown): string {
  if (value === undefined) throw invalid("'service' is missing", 'name the network service, e.g. db-net');
  if (typeof value !== 'string' || !serviceName.test(value)) {
    throw invalid(
      `'service' must be a network service name, got ${JSON.stringify(value)}`,
      'a service name is a lowercase DNS label: a-z, 0-9 and -, at most 63 characters, e.g. db-net',
    );
  }
  return value;
}

function optionalNetns(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '' || value.includes('\0')) {
    throw invalid(
      `'netns' must be a non-empty string, got ${JSON.stringify(value)}`,
      'give a name under /run/netns or an absolute path, or leave it out for the host',
    );
  }
  return value;
}

function labels(value: unknown): Record<string, string> {
  if (value === undefined) return {};
  const isRecord = typeof value === 'object' && value !== null && !Array.isArray(value);
  const entries = isRecord ? Object.entries(value) : [];
  if (!isRecord || entries.some(([k, v]) => k === '' || typeof v !== 'string')) {
    throw invalid(
      `'labels' must map names to strings, got ${JSON.stringify(value)}`,
      'e.g. {"labels": {"env": "prod"}}',
    );
  }
  return Object.fromEntries(entries);
}

function optionalStrings(value: unknown, field: string): string[] | undefined {
  if (value === undefined) return undefined;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v === '')) {
    throw invalid(
      `'${field}' must be a list of non-empty strings, got ${JSON.stringify(value)}`,
      'e.g. {"allow": ["spiffe://mesh.example/agent/*"]}',
    );
  }
  return value as string[];
}

function optionalCidr(value: unknown): string | undefined {
  if (value === undefined) return undefined;
  const m = typeof value === 'string' ? /^([^/]+)\/([0-9]{1,3})$/.exec(value) : null;
  const family = m?.[1] === undefined ? 0 : isIP(m[1]);
  const bits = Number(m?.[2]);
  if (family === 0 || bits > (family === 4 ? 32 : 128)) {
    throw invalid(
      `'cidr' must be an address range, got ${JSON.stringify(value)}`,
      'e.g. 169.254.0.0/16 (the default), or leave it out',
    );
  }
  return value as string;
}
