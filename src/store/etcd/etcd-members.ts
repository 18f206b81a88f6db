import { connectivityState } from '@grpc/grpc-js';
import { KV, Lease, Watch } from '../../api/etcd.js';
import { dial, formatGrpcUrl } from '../../api/grpc/index.js';
import type { ClientTransportCredentials, GrpcConnection, ServiceClient } from '../../api/grpc/index.js';
import type { EtcdEndpoint, EtcdUrl } from './etcd-url.js';

/** One etcd cluster member: its own connection (its own TLS name check) and typed clients. */
export interface EtcdMember {
  readonly endpoint: EtcdEndpoint;
  readonly conn: GrpcConnection;
  readonly kv: ServiceClient<typeof KV>;
  readonly lease: ServiceClient<typeof Lease>;
  readonly watch: ServiceClient<typeof Watch>;
}

/**
 * The members the URL lists, one of them in use. A member whose connection fails is left for the
 * next one in order (wrapping around); the store stays on a member while it works. One connection
 * per member rather than one multi-address channel, so each member's certificate is checked
 * against its own name, and DNS names work.
 */
export class EtcdMembers {
  readonly all: readonly [EtcdMember, ...EtcdMember[]];
  #active = 0;

  constructor(
    url: EtcdUrl,
    credentials: (endpoint: EtcdEndpoint) => ClientTransportCredentials,
    dialOptions: { readonly defaultTimeoutMs: number; readonly maxReceiveMessageBytes: number },
  ) {
    const open = (endpoint: EtcdEndpoint): EtcdMember => {
      const conn = dial(formatGrpcUrl(endpoint.grpc), {
        credentials: credentials(endpoint),
        defaultTimeoutMs: dialOptions.defaultTimeoutMs,
        tuning: { maxReceiveMessageBytes: dialOptions.maxReceiveMessageBytes },
      });
      return { endpoint, conn, kv: conn.client(KV), lease: conn.client(Lease), watch: conn.client(Watch) };
    };
    const [first, ...rest] = url.endpoints;
    this.all = [open(first), ...rest.map(open)];
  }

  /**
   * The member to call now. When the one in use is known to be down (its connection is in
   * TRANSIENT_FAILURE), the next member not known to be down takes over before the call is sent.
   */
  current(): { readonly member: EtcdMember; readonly switchedFrom?: EtcdMember } {
    const used = this.#member(this.#active);
    if (this.all.length === 1 || !down(used)) return { member: used };
    for (let i = 1; i < this.all.length; i++) {
      const m = this.#member(this.#active + i);
      if (!down(m)) {
        this.use(m);
        return { member: m, switchedFrom: used };
      }
    }
    return { member: used };
  }

  use(m: EtcdMember): void {
    this.#active = this.all.indexOf(m);
  }

  /** A call to `m` failed in transport: the next member is used from now on. Returns it if it changed. */
  failed(m: EtcdMember): EtcdMember | undefined {
    if (this.all.length === 1 || this.all[this.#active] !== m) return undefined;
    const next = this.#member(this.#active + 1);
    this.use(next);
    return next;
  }

  close(): void {
    for (const m of this.all) m.conn.close();
  }

  #member(i: number): EtcdMember {
    return this.all[i % this.all.length] ?? this.all[0];
  }
}

function down(m: EtcdMember): boolean {
  const s = m.conn.channel.getConnectivityState(false);
  return s === connectivityState.TRANSIENT_FAILURE || s === connectivityState.SHUTDOWN;
}
