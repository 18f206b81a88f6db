import { AgentError } from '../../errors/index.js';
import { formatGrpcUrl, isLocalOnly, parseGrpcUrl } from '../../api/grpc/index.js';
import type { GrpcUrl } from '../../api/grpc/index.js';

/** One member of an etcd cluster as the URL names it. */
export interface EtcdEndpoint {
  readonly grpc: Extract<GrpcUrl, { kind: 'tcp' }>;
  /** `host:port` (IPv6 in brackets), for logs and errors. */
  readonly text: string;
}

/**
 * A parsed `etcd://` or `etcds://` URL: TLS or not, and the cluster members in the order given
 * (the first that answers is used; the others take over when it fails).
 */
export interface EtcdUrl {
  readonly tls: boolean;
  readonly endpoints: readonly [EtcdEndpoint, ...EtcdEndpoint[]];
  /** The canonical URL, for logs and errors. */
  readonly text: string;
}

const FORM =
  'expected etcds://host:port[,host:port…] (TLS, e.g. etcds://etcd-1.example:2379,etcd-2.example:2379) ' +
  'or etcd://127.0.0.1:PORT (plaintext, loopback only)';

/**
 * Parses `--store etcds://host:port[,host:port…]` (TLS, any host) and `etcd://host:port[,…]`
 * (plaintext, which the gRPC layer only allows to loopback, so it is refused here for other hosts
 * with a pointer to etcds://).
 */
export function parseEtcdUrl(url: string): EtcdUrl {
  if (url.startsWith('https://') || url.startsWith('http://')) {
    throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}": use the etcds:// or etcd:// scheme`, {
      hint: `${FORM}; etcd's own https:// client URLs are etcds:// here`,
    });
  }
  const m = /^(etcds?):\/\/(.+)$/.exec(url);
  const scheme = m?.[1];
  const list = m?.[2];
  if (scheme === undefined || list === undefined) {
    throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}"`, { hint: FORM });
  }
  const tls = scheme === 'etcds';
  const endpoints = list.split(',').map((hostPort) => parseEndpoint(url, hostPort));
  const seen = new Set<string>();
  for (const e of endpoints) {
    if (seen.has(e.text)) {
      throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}": ${e.text} is listed twice`, {
        hint: FORM,
      });
    }
    seen.add(e.text);
  }
  const [first, ...rest] = endpoints;
  if (first === undefined)
    throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}"`, { hint: FORM });
  if (!tls) {
    const remote = endpoints.find((e) => !isLocalOnly(e.grpc));
    if (remote !== undefined) {
      throw new AgentError(
        'CONFIG_INVALID',
        `etcd at ${remote.text} is another host, and etcd:// is plaintext (loopback only)`,
        {
          hint:
            `use etcds://${endpoints.map((e) => e.text).join(',')} with --store-ca ` +
            '(and --store-cert/--store-key when etcd runs with --client-cert-auth)',
        },
      );
    }
  }
  return {
    tls,
    endpoints: [first, ...rest],
    text: `${scheme}://${endpoints.map((e) => e.text).join(',')}`,
  };
}

function parseEndpoint(url: string, hostPort: string): EtcdEndpoint {
  let grpc: GrpcUrl;
  try {
    grpc = parseGrpcUrl(`tcp://${hostPort}`);
  } catch (e: unknown) {
    throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}": "${hostPort}" is not host:port`, {
      hint: FORM,
      cause: e,
    });
  }
  if (grpc.kind !== 'tcp' || grpc.host === '' || grpc.port === 0) {
    throw new AgentError(
      'CONFIG_INVALID',
      `invalid etcd URL "${url}": "${hostPort}" needs a host and a port`,
      { hint: FORM },
    );
  }
  return { grpc, text: formatGrpcUrl(grpc).slice('tcp://'.length) };
}
