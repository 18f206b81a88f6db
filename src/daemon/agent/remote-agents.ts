import { X509Certificate } from 'node:crypto';
import { dial, spiffeIdFromCertificate } from '../../api/grpc/index.js';
import type { GrpcConnection, ServiceClient } from '../../api/grpc/index.js';
import { MonitorConnectionService, NetworkServiceService } from '../../api/index.js';
import type { TokenPeer } from '../../api/token/index.js';
import { AgentError } from '../../errors/index.js';
import type { IdentityKeeper } from './agent-identity.js';

/** One remote agent as the nsmgr calls it. */
export interface RemoteAgent {
  readonly url: string;
  readonly networkService: ServiceClient<typeof NetworkServiceService>;
  readonly monitor: ServiceClient<typeof MonitorConnectionService>;
  /** Who answered (SPIFFE ID and certificate of the TLS handshake): the token audience and signer. */
  peer(): { readonly token: TokenPeer; readonly certificate: X509Certificate } | undefined;
}

interface Entry {
  readonly conn: GrpcConnection;
  readonly release: () => void;
  readonly agent: RemoteAgent;
  certificate: X509Certificate | undefined;
}

/**
 * mTLS connections to other agents (one channel per URL, shared by every connection to it; grpc-js
 * reconnects by itself). A remote agent must present an agent SVID of our trust domain. A renewed
 * SVID reaches the channels in place (their next TLS connection presents it): no re-dial, so the
 * monitor streams heal keeps on them are not cut every renewal.
 */
export class RemoteAgents {
  readonly #entries = new Map<string, Entry>();

  constructor(private readonly identity: IdentityKeeper) {}

  /** The agent at `url`, connected (TLS done, so its identity is known) within `timeoutMs`. */
  async get(url: string, timeoutMs: number): Promise<RemoteAgent> {
    const entry = this.#entry(url);
    if (entry.certificate === undefined) {
      try {
        await entry.conn.waitForReady(new Date(Date.now() + timeoutMs));
      } catch (e: unknown) {
        throw AgentError.wrap(
          e,
          'UNAVAILABLE',
          `the agent at ${url} cannot be reached`,
          'check that it runs and that UDP/TCP between the hosts is open',
        );
      }
    }
    if (entry.certificate === undefined) {
      throw new AgentError('UNAVAILABLE', `the agent at ${url} did not present its SVID`, {
        hint: 'retry; if it persists, check the remote agent',
      });
    }
    return entry.agent;
  }

  close(): void {
    for (const e of this.#entries.values()) {
      e.conn.close();
      e.release();
    }
    this.#entries.clear();
  }

  #entry(url: string): Entry {
    const have = this.#entries.get(url);
    if (have) return have;
    const td = this.identity.view.trustDomain;
    const holder: { entry?: Entry } = {};
    const credentials = this.identity.renewingClientCredentials(
      (id) => id.startsWith(`spiffe://${td}/agent/`),
      (cert) => {
        if (holder.entry) holder.entry.certificate = new X509Certificate(cert.raw);
      },
    );
    const conn = dial(url, {
      credentials,
      // Peers, not the control plane: after a remote agent restarts, heal must reach it again well
      // within 2 s (the default first reconnect delay is 1 s, ×1.6 after).
      tuning: { initialReconnectBackoffMs: 100, maxReconnectBackoffMs: 1_000 },
    });
    let peer: { readonly token: TokenPeer; readonly certificate: X509Certificate } | undefined;
    const entry: Entry = {
      conn,
      release: () => credentials.release(),
      certificate: undefined,
      agent: {
        url,
        networkService: conn.client(NetworkServiceService),
        monitor: conn.client(MonitorConnectionService),
        // Every Request and Close asks; the certificate changes only on a new TLS connection, so
        // its SPIFFE ID (an ASN.1 parse) is worked out once per certificate.
        peer: () => {
          const cert = entry.certificate;
          if (!cert) return undefined;
          if (peer?.certificate !== cert) {
            peer = {
              token: { spiffeId: spiffeIdFromCertificate(cert.raw), notAfterMs: Date.parse(cert.validTo) },
              certificate: cert,
            };
          }
          return peer;
        },
      },
    };
    holder.entry = entry;
    this.#entries.set(url, entry);
    return entry;
  }
}
