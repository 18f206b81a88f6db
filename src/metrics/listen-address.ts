import { isIP } from 'node:net';
import { AgentError } from '../errors/index.js';

export interface ListenAddress {
  readonly host: string;
  readonly port: number;
}

const configHint = 'set agent.listen.metrics in the config file or --listen-metrics, e.g. 127.0.0.1:9464';

/**
 * Parses `[host]:port` (`127.0.0.1:9464`, `[::1]:9464`, `localhost:9464`). A bare `:port` means
 * 127.0.0.1, not every address: the metrics name peers and services, which is topology an
 * operator opts in to showing beyond the host. Port 0 picks a free port (tests).
 */
export function parseListenAddress(listen: string): ListenAddress {
  const m = /^(?:\[([0-9A-Fa-f:.]+)\]|([^:[\]]*)):(\d{1,5})$/.exec(listen.trim());
  const port = m === null ? NaN : Number(m[3]);
  if (m === null || port > 65535) {
    throw new AgentError('CONFIG_INVALID', `the metrics address "${listen}" is not [host]:port`, {
      hint: configHint,
    });
  }
  const bracketed = m[1];
  if (bracketed !== undefined && isIP(bracketed) !== 6) {
    throw new AgentError('CONFIG_INVALID', `the metrics address "${listen}" has an invalid IPv6 address`, {
      hint: configHint,
    });
  }
  const host = bracketed ?? (m[2] === undefined || m[2] === '' ? '127.0.0.1' : m[2]);
  return { host, port };
}

/** host:port for a URL, with IPv6 addresses in brackets. */
export function formatHostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}

export const listenConfigHint = configHint;
