import { mkdir, readFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import {
  clone,
  ConnectionSchema,
  create,
  KernelParam,
  MechanismClass,
  MechanismType,
  NetworkServiceRequestSchema,
} from '../../api/index.js';
import type { Connection, NetworkServiceRequest } from '../../api/index.js';
import {
  beginClient,
  buildChain,
  ChainContext,
  eventFactoryOf,
  inProcessConnect,
  refreshClient,
  updatePathClient,
  updateTokenClient,
} from '../../chain/index.js';
import type { Chain, ChainElement, EventFactory, PeerInfo } from '../../chain/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import { describe } from '../../errors/index.js';
import { addressOf } from '../../forwarder/index.js';
import { defaultInterfaceName } from '../../forwarder/mechanisms/index.js';
import type { Clock, LivenessProber, LivenessTarget, Random } from '../../host/index.js';
import { HostsFile, netnsPath, parseNetnsRef } from '../../host/index.js';
import type { Logger } from '../../log/index.js';
import { coalescing } from '../../util/index.js';
import type { ConnectionRow, ConnectionState } from '../../localapi/index.js';
import { connectKey, connectionId, serviceDnsName } from '../../workloads/index.js';
import type { SourcedConnect } from '../../workloads/index.js';
import type { Journal } from './journal.js';

/** One of this agent's own connections (a connect), as status shows it. */
export interface ClientConnection {
  readonly key: string;
  readonly id: string;
  spec: SourcedConnect;
  state: ConnectionState;
  conn: Connection | undefined;
  establishedAt: number | undefined;
  refreshedAt: number | undefined;
  heals: number;
  lastError: string | undefined;
  /** Background retry of a declared connect that failed. */
  retry: ReturnType<typeof setTimeout> | undefined;
  closed: boolean;
  /** The NSC begin's events of the connection (reselect goes through them). */
  events: EventFactory | undefined;
  /** The liveness watch of the current path. */
  watch: { readonly key: string; stop: () => void } | undefined;
  /** Reselects for a dead data path since the last ping reply; a pending one's timer. */
  reselects: number;
  reselectTimer: ReturnType<typeof setTimeout> | undefined;
  /** A reselect is under way: the Request that brings the connection up again counts as a heal. */
  reselecting: boolean;
}

export interface ClientConnectionsOptions {
  readonly agentName: string;
  readonly nsmgr: Chain;
  readonly signer: TokenSigner;
  readonly self: () => PeerInfo;
  readonly journal: Journal;
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
  /** Where `<service>.nsm` names go for host connects; undefined: no hosts file. */
  readonly hostsFile: string | undefined;
  /** Setup latency, for /metrics. */
  readonly onSetup?: (seconds: number, ok: boolean) => void;
  /**
   * Pings each connection's service address through its interface; a dead data path is reselected.
   * Undefined: no liveness check (control-plane heal only).
   */
  readonly liveness?: Pick<LivenessProber, 'watch'>;
  /** The interface host connects go through (the agent's WireGuard device): liveness pings leave by it. */
  readonly hostDevice?: string;
  /** A dead data path was found, or a reselect for it ended, for /metrics. */
  readonly onDataPlane?: (event: 'dead' | 'reselected' | 'reselect-failed') => void;
}

const SETUP_TIMEOUT_MS = 15_000;
const RETRY_MIN_MS = 1_000;
const RETRY_MAX_MS = 30_000;
/** Backoff between reselects of a path that stays dead (the only endpoint is unreachable, say). */
const RESELECT_MIN_MS = 1_000;
const RESELECT_MAX_MS = 30_000;

/**
 * The agent acting as the NSM client (NSC) for legacy workloads: each connect is a Request into the
 * agent's own nsmgr chain, in-process, through an NSC chain (updatepath, begin, refresh, updatetoken,
 * connect) — the same elements and tokens as an NSM client on nsm.sock. The last connection returned
 * is journaled, so after a restart the same connection is refreshed (adopted), not made anew.
 */
export class ClientConnections {
  readonly #o: ClientConnectionsOptions;
  readonly #chain: Chain;
  readonly #byKey = new Map<string, ClientConnection>();
  /** The same connections by their connection id: every Request (refreshes too) finds its row at once. */
  readonly #byId = new Map<string, ClientConnection>();
  readonly #hosts: HostsFile | undefined;
  readonly #netnsHosts = new Map<string, HostsFile>();
  readonly nscName: string;

  constructor(o: ClientConnectionsOptions) {
    this.#o = o;
    this.nscName = `${o.agentName}-nsc`;
    this.#hosts = o.hostsFile === undefined ? undefined : new HostsFile(o.hostsFile);
    this.#chain = buildChain('nsc', [
      updatePathClient(this.nscName),
      beginClient(),
      refreshClient(),
      this.#observer(),
      updateTokenClient({ signer: o.signer, server: () => ({ spiffeId: o.signer.spiffeId }) }),
      inProcessConnect(o.nsmgr, o.self),
    ]);
  }

  list(): ClientConnection[] {
    return [...this.#byKey.values()];
  }

  find(service: string, netns: string | undefined): ClientConnection | undefined {
    return this.#byKey.get(connectKey({ service, ...(netns === undefined ? {} : { netns }) }));
  }

  /** The connection whose nsmgr-side id (path segment 1) is `id` (heal reports those). */
  byNsmgrId(id: string): ClientConnection | undefined {
    for (const c of this.#byKey.values()) if (c.conn?.path?.pathSegments[1]?.id === id) return c;
    return undefined;
  }

  /**
   * Establishes `spec` and resolves when it is up; rejects with why not (and forgets it). A
   * journaled connection for the same spec is refreshed with its old path (adopted).
   */
  async connect(spec: SourcedConnect, signal?: AbortSignal): Promise<ClientConnection> {
    const key = connectKey(spec);
    const existing = this.#byKey.get(key);
    if (existing && !existing.closed) return existing;
    const c = this.#track(key, spec);
    try {
      await this.#request(c, signal);
    } catch (e: unknown) {
      this.#untrack(c);
      throw e;
    }
    return c;
  }

  #track(key: string, spec: SourcedConnect): ClientConnection {
    const c: ClientConnection = {
      key,
      id: connectionId(spec, this.#o.agentName),
      spec,
      state: 'connecting',
      conn: undefined,
      establishedAt: undefined,
      refreshedAt: undefined,
      heals: 0,
      lastError: undefined,
      retry: undefined,
      closed: false,
      events: undefined,
      watch: undefined,
      reselects: 0,
      reselectTimer: undefined,
      reselecting: false,
    };
    this.#byKey.set(key, c);
    this.#byId.set(c.id, c);
    return c;
  }

  #untrack(c: ClientConnection): void {
    this.#unwatch(c);
    if (this.#byKey.get(c.key) === c) this.#byKey.delete(c.key);
    if (this.#byId.get(c.id) === c) this.#byId.delete(c.id);
  }

  /**
   * A declared connect (config, or CLI from an earlier run): established in the background and
   * retried with backoff until it works, so a start while the control server is down recovers alone.
   */
  keep(spec: SourcedConnect): ClientConnection {
    const key = connectKey(spec);
    const existing = this.#byKey.get(key);
    if (existing) return existing;
    const c = this.#track(key, spec);
    void this.#keepTrying(c, 0);
    return c;
  }

  async #keepTrying(c: ClientConnection, attempt: number): Promise<void> {
    if (c.closed) return;
    try {
      await this.#request(c);
    } catch (e: unknown) {
      if (isClosed(c)) return;
      c.state = 'failed';
      const delay = Math.min(RETRY_MAX_MS, RETRY_MIN_MS * 2 ** attempt) * (0.5 + this.#o.random.float() / 2);
      this.#o.log.warn(
        { service: c.spec.service, netns: c.spec.netns, err: describe(e), retryInMs: Math.round(delay) },
        'connect failed; retrying',
      );
      c.retry = setTimeout(() => void this.#keepTrying(c, attempt + 1), delay);
    }
  }

  /** Closes and forgets the connection; the data plane of it goes on both sides. */
  async disconnect(c: ClientConnection, signal?: AbortSignal): Promise<void> {
    c.closed = true;
    if (c.retry) clearTimeout(c.retry);
    this.#unwatch(c);
    const conn = c.conn ?? this.#o.journal.data.clients.get(c.key);
    try {
      if (conn) await this.#chain.close(this.#ctx(signal), clone(ConnectionSchema, conn));
    } finally {
      this.#untrack(c);
      if (this.#o.journal.data.clients.has(c.key)) {
        this.#o.journal.data.clients.delete(c.key);
        await this.#o.journal.flush();
      }
      await this.#syncHosts();
    }
  }

  /** Journaled connections no spec claims any more (config edited while the agent was down): closed. */
  async closeUnclaimed(claimed: ReadonlySet<string>): Promise<void> {
    for (const [key, conn] of [...this.#o.journal.data.clients]) {
      if (claimed.has(key)) continue;
      this.#o.log.info(
        { connId: conn.id, service: conn.networkService },
        'closing a connection no connect claims',
      );
      try {
        await this.#chain.close(this.#ctx(), clone(ConnectionSchema, conn));
      } catch (e: unknown) {
        this.#o.log.warn({ connId: conn.id, err: describe(e) }, 'closing it failed; its timeout will');
      }
      this.#o.journal.data.clients.delete(key);
      await this.#o.journal.flush();
    }
  }

  /** Ends refreshes without closing anything (the agent stops; the data plane stays). */
  stop(): void {
    for (const c of this.#byKey.values()) {
      c.closed = true;
      if (c.retry) clearTimeout(c.retry);
      this.#unwatch(c);
    }
  }

  /** The nsmgr-side id of a connection (its path segment 1), under which the data plane is keyed. */
  nsmgrIdOf(c: ClientConnection): string | undefined {
    return c.conn?.path?.pathSegments[1]?.id;
  }

  row(
    c: ClientConnection,
    extra: { handshakeAgeSeconds?: number; remoteUrl?: string; device?: string } = {},
  ): ConnectionRow {
    const { handshakeAgeSeconds, remoteUrl } = extra;
    const ip = c.conn?.context?.ipContext;
    const mech = c.conn?.mechanism;
    const iface = c.spec.netns === undefined ? extra.device : mech?.parameters[KernelParam.INTERFACE_NAME];
    const endpoint = c.conn?.networkServiceEndpointName;
    return {
      id: c.id,
      service: c.spec.service,
      ...(c.spec.netns === undefined ? {} : { netns: c.spec.netns }),
      labels: c.spec.labels,
      source: c.spec.source,
      state: c.state,
      ...(endpoint ? { endpoint } : {}),
      ...(remoteUrl === undefined ? {} : { remoteUrl }),
      localAddresses: [...(ip?.srcIpAddrs ?? [])],
      serviceAddresses: [...(ip?.dstIpAddrs ?? [])],
      ...(c.conn ? { dnsName: serviceDnsName(c.spec.service) } : {}),
      ...(iface ? { interface: iface } : {}),
      ...(handshakeAgeSeconds === undefined ? {} : { handshakeAgeSeconds }),
      ...(c.establishedAt === undefined ? {} : { establishedAt: new Date(c.establishedAt).toISOString() }),
      ...(c.refreshedAt === undefined ? {} : { refreshedAt: new Date(c.refreshedAt).toISOString() }),
      heals: c.heals,
      ...(c.lastError === undefined ? {} : { lastError: c.lastError }),
    };
  }

  async #request(c: ClientConnection, signal?: AbortSignal): Promise<void> {
    const started = performance.now();
    const request = this.#requestOf(c);
    const ctx = this.#ctx(signal, this.#o.clock.now() + SETUP_TIMEOUT_MS);
    try {
      const conn = await this.#chain.request(ctx, request);
      this.#o.onSetup?.((performance.now() - started) / 1000, true);
      this.#o.log.info(
        {
          service: c.spec.service,
          netns: c.spec.netns,
          endpoint: conn.networkServiceEndpointName,
          addresses: conn.context?.ipContext?.srcIpAddrs,
          serviceAddresses: conn.context?.ipContext?.dstIpAddrs,
          ms: Math.round(performance.now() - started),
        },
        'connected',
      );
    } catch (e: unknown) {
      this.#o.onSetup?.((performance.now() - started) / 1000, false);
      c.lastError = describe(e);
      throw e;
    }
  }

  #requestOf(c: ClientConnection): NetworkServiceRequest {
    const journaled = this.#o.journal.data.clients.get(c.key);
    const connection = journaled
      ? clone(ConnectionSchema, journaled)
      : create(ConnectionSchema, {
          id: c.id,
          networkService: c.spec.service,
          labels: { ...c.spec.labels },
          path: { index: 0, pathSegments: [{ name: this.nscName, id: c.id }] },
        });
    connection.labels = { ...c.spec.labels };
    return create(NetworkServiceRequestSchema, {
      connection,
      mechanismPreferences: [
        {
          cls: MechanismClass.LOCAL,
          type: MechanismType.KERNEL,
          parameters: {
            [KernelParam.INTERFACE_NAME]: c.spec.netns === undefined ? defaultInterfaceName(c.id) : 'nsm0',
            ...(c.spec.netns === undefined ? {} : { [KernelParam.NETNS_URL]: netnsUrl(c.spec.netns) }),
          },
        },
      ],
    });
  }

  #ctx(signal?: AbortSignal, deadline?: number): ChainContext {
    return new ChainContext({
      log: this.#o.log,
      clock: this.#o.clock,
      random: this.#o.random,
      ...(signal ? { signal } : {}),
      ...(deadline === undefined ? {} : { deadline }),
    });
  }

  /**
   * Runs after begin and refresh for every Request of a connection (the first, refreshes, heals):
   * keeps the row and the journal current.
   */
  #observer(): ChainElement {
    return {
      name: 'observer',
      request: async (ctx, request, next) => {
        const c = this.#byId.get(this.#ownIdOf(request.connection));
        try {
          const conn = await next.request(ctx, request);
          if (c && !c.closed) {
            const now = this.#o.clock.now();
            c.conn = clone(ConnectionSchema, conn);
            c.establishedAt ??= now;
            c.refreshedAt = now;
            c.state = 'up';
            // In the same turn as 'up' on the new path: status never shows it moved but not healed.
            if (c.reselecting) {
              c.heals++;
              this.#o.onDataPlane?.('reselected');
            }
            c.reselecting = false;
            c.lastError = undefined;
            c.events = eventFactoryOf(ctx) ?? c.events;
            this.#watch(c);
            this.#o.journal.data.clients.set(c.key, c.conn);
            // This write also holds what the nsmgr chain changed for the request (its journal-commit
            // leaves our own requests to us): one write per connect.
            await Promise.all([this.#o.journal.flush(), this.#syncHosts()]);
          } else {
            await this.#o.journal.flush();
          }
          return conn;
        } catch (e: unknown) {
          // What the nsmgr chain undid for the failed request.
          await this.#o.journal.flushAfterFailedRequest(this.#o.log);
          if (c && c.state === 'up') {
            c.lastError = describe(e);
            this.#o.log.warn(
              { service: c.spec.service, err: c.lastError },
              'refreshing the connection failed',
            );
          }
          throw e;
        }
      },
      close: (ctx, connection, next) => next.close(ctx, connection),
    };
  }

  /**
   * Our id of a connection, from our own path segment. Not `connection.id` alone: begin keeps the
   * connection as the next hop returned it, so a refresh or reselect it starts carries the nsmgr's id
   * there until updatepath (before begin) puts ours back on the way out.
   */
  #ownIdOf(conn: Connection | undefined): string {
    return conn?.path?.pathSegments.find((s) => s.name === this.nscName)?.id ?? conn?.id ?? '';
  }

  /**
   * `<service>.nsm` → service address for every connection that is up: host connects in the hosts
   * file; connects of a named netns in `/etc/netns/<name>/hosts` (what `ip netns exec` shows as
   * /etc/hosts inside it; rewritten in place, since processes already in the netns see the file
   * itself) — only when the agent manages the real /etc/hosts, never on a test bed. Connections
   * that change together share one rewrite (coalescing).
   */
  readonly #syncHosts = coalescing(() => this.#writeHosts());

  async #writeHosts(): Promise<void> {
    if (!this.#hosts) return;
    const byFile = new Map<string, { address: string; names: string[] }[]>([[this.#hosts.path, []]]);
    for (const f of this.#netnsHosts.keys()) byFile.set(f, []);
    for (const c of this.#byKey.values()) {
      const first = c.conn?.context?.ipContext?.dstIpAddrs[0];
      const address = first === undefined ? undefined : addressOf(first);
      if (!address) continue;
      const file = this.#hostsFileFor(c.spec.netns);
      if (file === undefined) continue;
      const list = byFile.get(file) ?? [];
      list.push({ address, names: [serviceDnsName(c.spec.service)] });
      byFile.set(file, list);
    }
    for (const [file, entries] of byFile) {
      try {
        await (file === this.#hosts.path ? this.#hosts : await this.#netnsHostsFile(file)).set(entries);
      } catch (e: unknown) {
        this.#o.log.warn({ path: file, err: describe(e) }, 'could not update the hosts file');
      }
    }
  }

  #hostsFileFor(netns: string | undefined): string | undefined {
    if (netns === undefined) return this.#hosts?.path;
    if (this.#hosts?.path !== '/etc/hosts' || !/^[A-Za-z0-9_.-]+$/.test(netns)) return undefined;
    return `/etc/netns/${netns}/hosts`;
  }

  async #netnsHostsFile(path: string): Promise<HostsFile> {
    let f = this.#netnsHosts.get(path);
    if (!f) {
      // A missing netns file starts as the host's, so the namespace keeps localhost and the rest.
      const initial = await readFile('/etc/hosts', 'latin1').catch(() => '127.0.0.1 localhost\n');
      await mkdir(dirname(path), { recursive: true });
      f = new HostsFile(path, { initial, inPlace: true });
      this.#netnsHosts.set(path, f);
    }
    return f;
  }

  /**
   * The liveness check of a connection that is up (NSM heal's datapath check): its service address,
   * pinged from its own address through its interface. A new path (reselect, other addresses) gets a
   * new watch; the same path keeps its watch across refreshes.
   */
  #watch(c: ClientConnection): void {
    const liveness = this.#o.liveness;
    const target = liveness ? this.#targetOf(c) : undefined;
    if (!liveness || !target) {
      this.#unwatch(c);
      return;
    }
    const key = JSON.stringify(target);
    if (c.watch?.key === key) return;
    this.#unwatch(c);
    // The prober never calls a handler inside watch(): the entry is in place before any can run.
    const entry: NonNullable<ClientConnection['watch']> = { key, stop: () => undefined };
    c.watch = entry;
    const current = (): boolean => !c.closed && c.watch === entry;
    const handle = liveness.watch(target, {
      dead: (reason) => {
        if (current()) this.#onDead(c, reason);
      },
      alive: () => {
        if (!current()) return;
        c.reselects = 0;
        // It came back by itself (a blip): the pending reselect is not needed.
        if (c.reselectTimer) clearTimeout(c.reselectTimer);
        c.reselectTimer = undefined;
        if (c.state === 'healing') c.state = 'up';
        c.lastError = undefined;
        this.#o.log.info({ service: c.spec.service, netns: c.spec.netns }, 'the data path answers again');
      },
    });
    entry.stop = () => handle.stop();
  }

  #unwatch(c: ClientConnection): void {
    c.watch?.stop();
    c.watch = undefined;
    if (c.reselectTimer) clearTimeout(c.reselectTimer);
    c.reselectTimer = undefined;
  }

  /**
   * What to ping for `c`, and its group: the agent at the far end of the path (the segment after
   * our nsmgr's: the remote agent, whose WireGuard peer every connection to it shares; or our own
   * endpoint). Connections of one group in one netns share their path but for the last hop, so the
   * prober pings only a few of them while they answer (LivenessTarget.group). A reselect to another
   * agent changes the group, so the watch key changes with it even if the service address stays.
   */
  #targetOf(c: ClientConnection): LivenessTarget | undefined {
    const ip = c.conn?.context?.ipContext;
    const [srcPrefix, dstPrefix] = [ip?.srcIpAddrs[0], ip?.dstIpAddrs[0]];
    if (!srcPrefix || !dstPrefix) return undefined;
    const [src, dst] = [addressOf(srcPrefix), addressOf(dstPrefix)];
    // Path: our NSC, our nsmgr (agentName), then the far agent's nsmgr (or our own endpoint).
    const segments = c.conn?.path?.pathSegments ?? [];
    const own = segments.findIndex((s) => s.name === this.nscName);
    const farAgent = segments.find(
      (s, i) => own >= 0 && i > own && s.name !== this.nscName && s.name !== this.#o.agentName,
    )?.name;
    const group = farAgent ? { group: `agent:${farAgent}` } : {};
    if (c.spec.netns === undefined) {
      const ifName = this.#o.hostDevice;
      return ifName === undefined ? undefined : { netns: undefined, ifName, src, dst, ...group };
    }
    const ifName = c.conn?.mechanism?.parameters[KernelParam.INTERFACE_NAME];
    if (!ifName) return undefined;
    return { netns: netnsPath(parseNetnsRef(c.spec.netns)), ifName, src, dst, ...group };
  }

  /**
   * The data path of `c` stopped answering while its control plane may be fine (UDP blocked between
   * the hosts, the remote's tunnel gone): reselect — close this path and request again with the
   * endpoints used before tried last (roundrobin). A path that stays dead is reselected again with
   * backoff (1 s … 30 s, jittered), so one unreachable endpoint does not make the agent churn.
   */
  #onDead(c: ClientConnection, reason: string): void {
    this.#o.onDataPlane?.('dead');
    c.state = 'healing';
    c.lastError = `data path dead: ${reason}`;
    if (c.reselectTimer) return;
    const delay =
      c.reselects === 0
        ? 0
        : Math.min(RESELECT_MAX_MS, RESELECT_MIN_MS * 2 ** (c.reselects - 1)) *
          (0.5 + this.#o.random.float() / 2);
    this.#o.log.warn(
      {
        service: c.spec.service,
        netns: c.spec.netns,
        endpoint: c.conn?.networkServiceEndpointName,
        reason,
        reselectInMs: Math.round(delay),
      },
      'the data path of the connection is dead (no reply to liveness pings); reselecting',
    );
    c.reselectTimer = setTimeout(() => {
      c.reselectTimer = undefined;
      void this.#reselect(c);
    }, delay);
  }

  async #reselect(c: ClientConnection): Promise<void> {
    const events = c.events;
    if (c.closed || !events || events.state !== 'established') return;
    c.reselects++;
    // A fresh watch for whatever path comes out: the old one said its piece.
    c.watch?.stop();
    c.watch = undefined;
    const before = c.conn?.networkServiceEndpointName;
    c.reselecting = true;
    try {
      await events.request({ reselect: true, signal: events.signal });
      if (isClosed(c)) return;
      this.#o.log.info(
        {
          service: c.spec.service,
          netns: c.spec.netns,
          from: before,
          to: c.conn?.networkServiceEndpointName,
        },
        'reselected the connection after its data path died',
      );
      // The observer (inside the chain) armed the watch of the new path.
    } catch (e: unknown) {
      c.reselecting = false;
      if (isClosed(c)) return;
      this.#o.onDataPlane?.('reselect-failed');
      c.lastError = `reselect failed: ${describe(e)}`;
      this.#o.log.warn({ service: c.spec.service, err: describe(e) }, 'reselecting the connection failed');
      this.#onDead(c, 'the reselect failed');
    }
  }

  /** Marks a connection as healing or healed (from heal's events on the nsmgr side). */
  healEvent(nsmgrId: string, kind: 'lost' | 'healed' | 'heal-failed', error?: unknown): void {
    const c = this.byNsmgrId(nsmgrId);
    if (!c) return;
    if (kind === 'lost') c.state = 'healing';
    else if (kind === 'healed') {
      c.state = 'up';
      c.heals++;
      c.refreshedAt = this.#o.clock.now();
    } else c.lastError = describe(error);
  }
}

/** Read through a function: a connection may be closed while a request for it was awaited. */
function isClosed(c: ClientConnection): boolean {
  return c.closed;
}

/** A named netns (`/var/run/netns/<name>`) or an absolute path, as the KERNEL mechanism's inodeURL. */
function netnsUrl(netns: string): string {
  return `file://${netnsPath(parseNetnsRef(netns))}`;
}
