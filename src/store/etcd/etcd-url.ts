import { AgentError } from '../../errors/index.js';
import { formatGrpcUrl, isLocalOnly, parseGrpcUrl } from '../../api/grpc/index.js';
import type { GrpcUrl } from '../../api/grpc/index.js';

/** A parsed `etcd://host:port`: where to dial, and the text to show in logs and errors. */
export interface EtcdUrl {
  readonly grpc: Extract<GrpcUrl, { kind: 'tcp' }>;
  readonly text: string;
}

const FORM = 'expected etcd://host:port, e.g. etcd://127.0.0.1:2379 (plaintext, loopback only for now)';

/**
 * Parses the `--store etcd://host:port` form. The connection is plaintext, which the gRPC layer only
 * allows to loopback; TLS to etcd (client certificates, `etcds://`) is a later step.
 */
export function parseEtcdUrl(url: string): EtcdUrl {
  if (url.startsWith('etcds://') || url.startsWith('https://')) {
    throw new AgentError('CONFIG_INVALID', `TLS to etcd is not supported yet: ${url}`, {
      hint: 'run etcd (or a local TLS proxy to it) on loopback and use etcd://127.0.0.1:PORT',
    });
  }
  const m = /^etcd:\/\/(.+)$/.exec(url);
  if (!m?.[1]) throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}"`, { hint: FORM });
  let grpc: GrpcUrl;
  try {
    grpc = parseGrpcUrl(`tcp://${m[1]}`);
  } catch (e: unknown) {
    throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}"`, { hint: FORM, cause: e });
  }
  if (grpc.kind !== 'tcp' || grpc.host === '' || grpc.port === 0) {
    throw new AgentError('CONFIG_INVALID', `invalid etcd URL "${url}": it needs a host and a port`, {
      hint: FORM,
    });
  }
  if (!isLocalOnly(grpc)) {
    throw new AgentError(
      'CONFIG_INVALID',
      `etcd at ${url} is another host, and TLS to etcd is not supported yet`,
      {
        hint: 'use an etcd on loopback (or a local TLS proxy to the cluster) for now',
      },
    );
  }
  return { grpc, text: `etcd://${formatGrpcUrl(grpc).slice('tcp://'.length)}` };
}
