import { isIP } from 'node:net';
import type { DescService } from '@bufbuild/protobuf';
import { ChannelCredentials, Client } from '@grpc/grpc-js';
import type { ChannelInterface } from '@grpc/grpc-js';
import { AgentError, describe } from '../../errors/index.js';
import type { ClientTransportCredentials } from './credentials.js';
import { DEFAULT_UNARY_TIMEOUT_MS, channelOptions, defaultClientTuning } from './options.js';
import type { ClientTuning } from './options.js';
import { makeClient } from './typed-client.js';
import type { ServiceClient } from './typed-client.js';
import { dialTarget, formatGrpcUrl, isLocalOnly, parseGrpcUrl } from './url.js';

export interface DialOptions {
  readonly credentials: ClientTransportCredentials;
  /** Deadline for unary calls that set none (default 15 s). */
  readonly defaultTimeoutMs?: number;
  readonly tuning?: Partial<ClientTuning>;
}

/**
 * One channel to one peer. grpc-js connects lazily and reconnects by itself with backoff, so
 * this does no I/O until the first call or waitForReady.
 */
export interface GrpcConnection {
  readonly url: string;
  readonly channel: ChannelInterface;
  /** A typed client for a service, sharing this connection's channel. */
  client<S extends DescService>(service: S): ServiceClient<S>;
  /** Resolves once connected; rejects with DEADLINE_EXCEEDED at `deadline`, or UNAVAILABLE once closed. */
  waitForReady(deadline: Date): Promise<void>;
  /** Closes the channel; calls in flight fail with CANCELLED/UNAVAILABLE. Idempotent. */
  close(): void;
}

export function dial(url: string, options: DialOptions): GrpcConnection {
  const parsed = parseGrpcUrl(url);
  const text = formatGrpcUrl(parsed);
  const target = dialTarget(parsed);
  const { credentials } = options;
  if (credentials.kind === 'insecure' && parsed.kind === 'tcp') {
    if (!isLocalOnly(parsed)) {
      throw new AgentError('CONFIG_INVALID', `refusing to dial ${text} without TLS: it is another host`, {
        hint: 'use clientCredentials(...) for remote peers',
      });
    }
    if (!credentials.allowLoopbackTcp) {
      throw new AgentError('CONFIG_INVALID', `refusing to dial ${text} without TLS`, {
        hint: 'pass insecure({ allowLoopbackTcp: true }) if an unauthenticated loopback peer is intended',
      });
    }
  }
  const channelCredentials =
    credentials.kind === 'insecure' ? ChannelCredentials.createInsecure() : credentials.grpc;
  const channelOpts = channelOptions({ ...defaultClientTuning, ...options.tuning });
  // Peers are checked by SPIFFE ID, not by name, so the TLS server name only matters to TLS itself:
  // an IP literal there is not allowed by RFC 6066 (Node warns, DEP0123). Send a fixed name instead.
  if (credentials.kind !== 'insecure' && parsed.kind === 'tcp' && isIP(parsed.host) !== 0) {
    channelOpts['grpc.ssl_target_name_override'] = 'nsm-agent.invalid';
  }
  const client = new Client(target, channelCredentials, channelOpts);
  const defaults = { defaultTimeoutMs: options.defaultTimeoutMs ?? DEFAULT_UNARY_TIMEOUT_MS, target: text };
  let closed = false;

  return {
    url: text,
    channel: client.getChannel(),
    client: (service) => makeClient(service, client, defaults),
    waitForReady(deadline) {
      return new Promise((resolve, reject) => {
        if (closed) {
          reject(new AgentError('UNAVAILABLE', `connection to ${text} is closed`));
          return;
        }
        client.waitForReady(deadline, (err) => {
          if (!err) {
            resolve();
            return;
          }
          const code = closed ? 'UNAVAILABLE' : 'DEADLINE_EXCEEDED';
          reject(
            new AgentError(
              code,
              `could not connect to ${text} by ${deadline.toISOString()}: ${describe(err)}`,
              {
                cause: err,
                hint: 'check that the peer runs and listens there, and that both sides trust the same bundle',
              },
            ),
          );
        });
      });
    },
    close() {
      if (closed) return;
      closed = true;
      client.close();
    },
  };
}
