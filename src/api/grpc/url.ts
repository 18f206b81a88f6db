import { isIP } from 'node:net';
import { AgentError } from '../../errors/index.js';

/**
 * A listen or dial address. NSM writes endpoint URLs as `unix:///path` and `tcp://host:port`
 * (registry `url` fields carry them verbatim), so these are the only forms we accept, and the
 * same parser serves both config and the wire.
 */
export type GrpcUrl =
  | { readonly kind: 'unix'; readonly path: string }
  /** `host` is '' for "all interfaces"; IPv6 hosts are stored without brackets. */
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number };

const ACCEPTED_FORMS =
  'accepted forms: unix:///absolute/path, tcp://host:port, tcp://:port (all interfaces), tcp://[ipv6]:port';

/** sun_path is 108 bytes on Linux including the terminating NUL; longer paths fail at bind time with a cryptic error. */
const MAX_UNIX_PATH_BYTES = 107;

const TCP_RE = /^tcp:\/\/(?:\[([^\]]*)\]|([^:/?#[\]@]*)):(\d{1,5})$/;
const HOSTNAME_RE =
  /^(?=.{1,253}$)[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?)*$/;

function invalid(url: string, why: string): AgentError {
  return new AgentError('CONFIG_INVALID', `invalid gRPC address "${url}": ${why}`, { hint: ACCEPTED_FORMS });
}

/** Parses a listen or dial URL; throws CONFIG_INVALID naming the accepted forms. */
export function parseGrpcUrl(url: string): GrpcUrl {
  if (url.startsWith('unix:')) {
    if (!url.startsWith('unix:///'))
      throw invalid(url, 'a unix socket needs an absolute path (three slashes)');
    const path = url.slice('unix://'.length);
    if (/[?#\0]/.test(path)) throw invalid(url, 'the path may not contain "?", "#" or NUL');
    if (path.endsWith('/')) throw invalid(url, 'the path names a directory, not a socket file');
    if (Buffer.byteLength(path) > MAX_UNIX_PATH_BYTES) {
      throw invalid(url, `the socket path is longer than ${MAX_UNIX_PATH_BYTES} bytes`);
    }
    return { kind: 'unix', path };
  }
  if (url.startsWith('tcp:')) {
    const m = TCP_RE.exec(url);
    if (!m) throw invalid(url, 'expected tcp://host:port');
    const [, v6, host4OrName, portText] = m;
    const port = Number(portText);
    if (!Number.isInteger(port) || port > 65535) throw invalid(url, 'the port must be 0-65535');
    if (v6 !== undefined) {
      if (isIP(v6) !== 6) throw invalid(url, `"[${v6}]" is not an IPv6 address`);
      return { kind: 'tcp', host: v6, port };
    }
    const host = host4OrName ?? '';
    if (host !== '' && isIP(host) !== 4 && !HOSTNAME_RE.test(host)) {
      throw invalid(url, `"${host}" is not an IPv4 address or host name (IPv6 goes in brackets)`);
    }
    return { kind: 'tcp', host, port };
  }
  throw invalid(url, 'unknown scheme');
}

/** The canonical URL text for a parsed address. */
export function formatGrpcUrl(u: GrpcUrl): string {
  if (u.kind === 'unix') return `unix://${u.path}`;
  return `tcp://${hostPort(u.host, u.port)}`;
}

/**
 * The address grpc-js `Server.bindAsync` takes. "All interfaces" binds `[::]`, which Linux makes
 * dual-stack; the server falls back to 0.0.0.0 on hosts with IPv6 disabled.
 */
export function bindAddress(u: GrpcUrl): string {
  if (u.kind === 'unix') return `unix://${u.path}`;
  return hostPort(u.host === '' ? '::' : u.host, u.port);
}

/** The grpc-js channel target for dialing; "all interfaces" and port 0 cannot be dialed. */
export function dialTarget(u: GrpcUrl): string {
  if (u.kind === 'unix') return `unix://${u.path}`;
  const url = formatGrpcUrl(u);
  if (u.host === '')
    throw invalid(url, 'tcp://:port means "all interfaces" and can only be listened on; dial a host');
  if (u.port === 0) throw invalid(url, 'port 0 can only be listened on; dial the bound port');
  // An explicit dns: scheme, so grpc-js never mistakes "host:port" for "scheme:path".
  return `dns:${hostPort(u.host, u.port)}`;
}

/** True for unix sockets and for tcp addresses that never leave the host. */
export function isLocalOnly(u: GrpcUrl): boolean {
  if (u.kind === 'unix') return true;
  return isLoopbackHost(u.host);
}

function isLoopbackHost(host: string): boolean {
  if (host === 'localhost' || host === '::1') return true;
  return isIP(host) === 4 && host.startsWith('127.');
}

function hostPort(host: string, port: number): string {
  return isIP(host) === 6 ? `[${host}]:${port}` : `${host}:${port}`;
}
