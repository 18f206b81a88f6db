import { networkInterfaces, hostname as osHostname } from 'node:os';
import { isIP } from 'node:net';
import { insecure, parseGrpcUrl, probeUnixSocket, startServer } from '../../api/grpc/index.js';
import type { GrpcServer } from '../../api/grpc/index.js';
import type { ConnectionEvent, MonitorScopeSelector } from '../../api/index.js';
import { networkServiceOf } from '../../chain/index.js';
import { healClient } from '../../chain/heal/index.js';
import { ConnectionMonitor, monitorConnectionService } from '../../chain/monitor/index.js';
import type { AgentConfig } from '../../config/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { icmpLivenessProber } from '../../host/index.js';
import type { Clock, Random } from '../../host/index.js';
import { serverSpiffeId } from '../../identity/index.js';
import type { Logger } from '../../log/index.js';
import { startLocalApi } from '../../localapi/local-api-server.js';
import type {
  AgentControl,
  ConnectionRow,
  ExposeRow,
  ServicesReport,
  StatusReport,
} from '../../localapi/index.js';
import { AgentMetrics, startMetricsServer } from '../../metrics/index.js';
import { RegistryProxy } from '../../registry/proxy/index.js';
import { agentVersion } from '../../util/index.js';
import { WorkloadSpecs, serviceDnsName } from '../../workloads/index.js';
import { IdentityKeeper } from './agent-identity.js';
import { ClientConnections } from './client-connections.js';
import { Dataplane } from './dataplane.js';
import { Journal } from './journal.js';
import { LocalEndpoints } from './local-endpoints.js';
import type { Exposed } from './local-endpoints.js';
import { nsmgrChain, remoteUrlOf } from './nsmgr-chain.js';
import { proxyLookup } from './registry-lookup.js';
import { RemoteAgents } from './remote-agents.js';

export interface AgentOptions {
  readonly config: AgentConfig;
  readonly configPath: string;
  /** The agent name the config file sets, if it sets one (else hostname + host id). */
  readonly configuredName: string | undefined;
  /** The URL remote agents dial; default: the remote listener with this host's first non-loopback IPv4. */
  readonly publicUrl?: string;
  /** Hosts file for `<service>.nsm` names (default /etc/hosts); 'none' turns it off. */
  readonly hostsFile?: string;
  readonly log: Logger;
  readonly clock: Clock;
  readonly random: Random;
}

export interface RunningAgent {
  readonly name: string;
  readonly spiffeId: string;
  readonly publicUrl: string;
  readonly listen: { nsm: string; remote: string; api: string; metrics: string };
  readonly control: AgentControl;
  /** Stops serving; the data plane stays as it is (a restart adopts it). */
  close(): Promise<void>;
}

const REMOTE_TIMEOUT_MS = 10_000;

/**
 * `nsm-agent run`: the one place that wires the agent together (DESIGN §4). Identity first (nothing
 * runs without one), then the journal and the data plane it adopts, the registry proxy, the nsmgr
 * chain and its servers, the local API and /metrics; then the declared connects and exposes.
 */
export async function startAgent(o: AgentOptions): Promise<RunningAgent> {
  const { config, clock, random } = o;
  const stateDir = config.agent.stateDir;
  const startedAt = clock.now();
  const identity = await IdentityKeeper.load({
    stateDir,
    clock,
    random,
    log: o.log.child({ subsystem: 'identity' }),
  });
  const id = identity.view;
  const name = o.configuredName ?? `${osHostname()}-${id.hostId.slice(0, 8)}`;
  const log = o.log.child({ agent: name });
  const serverUrl = config.mesh.server ?? id.serverUrl;
  const publicUrl = o.publicUrl ?? defaultPublicUrl(config.agent.listen.remote);
  const tunnelIp = tunnelIpOf(publicUrl);
  // Two agents on one state would fight over one data plane: refuse before touching anything.
  const apiPath = parseGrpcUrl(config.agent.listen.api);
  if (apiPath.kind === 'unix' && (await probeUnixSocket(apiPath.path)) === 'live') {
    throw new AgentError(
      'FAILED_PRECONDITION',
      `an nsm-agent is already running here (it answers on ${config.agent.listen.api})`,
      {
        hint: 'stop it first (systemctl stop nsm-agent), or give this one its own --state-dir, --run-dir and ports',
      },
    );
  }
  const journal = await Journal.open(stateDir);
  const dataplane = await Dataplane.open({
    stateDir,
    interfaceName: config.wireguard.interface,
    listenPort: config.wireguard.port,
    backend: config.wireguard.backend,
    journal,
    log,
  });
  const specs = new WorkloadSpecs({ stateDir, configPath: o.configPath, config });
  for (const line of (await specs.load()).shadowed) log.warn(line);

  const metrics = new AgentMetrics({ log, clock });
  const closers: (() => Promise<void> | void)[] = [];
  try {
    closers.push(() => dataplane.close()); // last: the forwarder's kept ip processes
    const td = id.trustDomain;
    const proxy = new RegistryProxy({
      upstreamUrl: serverUrl,
      credentials: identity.clientCredentials(serverSpiffeId(td)),
      signer: identity.signer,
      upstreamSpiffeId: serverSpiffeId(td),
      publicUrl,
      clock,
      random,
      log,
      onRoundTrip: (method, seconds) => metrics.observeRegistry(method, seconds),
    });
    proxy.start();
    closers.push(() => proxy.close());
    identity.onRenewed(() =>
      proxy.updateIdentity({
        credentials: identity.clientCredentials(serverSpiffeId(td)),
        signer: identity.signer,
      }),
    );
    const nsmUrl = config.agent.listen.nsm;
    const local = new LocalEndpoints({
      agentName: name,
      localUrl: nsmUrl,
      signer: identity.signer,
      dataplane,
      proxy,
      log,
    });
    const remotes = new RemoteAgents(identity);
    closers.push(() => remotes.close());
    const monitor = new ConnectionMonitor();
    closers.push(() => monitor.close());
    // Set below; heal reports through it.
    const healTarget: { clients?: ClientConnections } = {};
    const heal = healClient({
      selfName: name,
      remoteOf: remoteUrlOf(local),
      subscribe: (url, selector, signal) => subscribeRemote(remotes, url, selector, signal),
      onEvent: (e) => {
        metrics.heal(e.kind === 'heal-failed' ? 'failed' : e.kind);
        healTarget.clients?.healEvent(e.connectionId, e.kind, e.error);
        if (e.kind !== 'healed')
          log.info(
            {
              connId: e.connectionId,
              url: e.url,
              err: e.error === undefined ? undefined : describe(e.error),
            },
            `heal: ${e.kind}`,
          );
      },
    });
    const nsmgr = nsmgrChain({
      name,
      spiffeId: id.spiffeId,
      signer: identity.signer,
      forwarder: dataplane,
      wireguard: {
        tunnelIp,
        publicKey: dataplane.publicKey,
        listenPort: config.wireguard.port,
        mtu: dataplane.device.mtu,
      },
      lookup: proxyLookup(proxy, serverUrl),
      monitor,
      heal,
      remotes,
      local,
      journal,
      allowed: (service) => local.allowed(service),
      remoteTimeoutMs: REMOTE_TIMEOUT_MS,
    });
    // The data-plane liveness check of our own connections (NSM heal's datapath check); one ICMP
    // socket per netns and one timer for all of them.
    const { intervalMs, misses } = config.agent.liveness;
    const liveness =
      intervalMs > 0
        ? icmpLivenessProber({ intervalMs, misses, clock, log: log.child({ subsystem: 'liveness' }) })
        : undefined;
    if (liveness) closers.push(() => liveness.close());
    const self = () => ({
      spiffeId: identity.view.spiffeId,
      certificate: identity.view.certificate,
      address: 'in-process',
    });
    const clients = new ClientConnections({
      agentName: name,
      nsmgr,
      signer: identity.signer,
      self,
      journal,
      log,
      clock,
      random,
      hostsFile: o.hostsFile === 'none' ? undefined : (o.hostsFile ?? '/etc/hosts'),
      onSetup: (s, ok) => metrics.observeSetup(s, ok),
      ...(liveness === undefined ? {} : { liveness }),
      hostDevice: dataplane.device.name,
      onDataPlane: (e) =>
        metrics.heal(e === 'dead' ? 'dataplane_dead' : e === 'reselected' ? 'reselected' : 'failed'),
    });
    healTarget.clients = clients;
    const clientsRef = clients;
    closers.push(() => clientsRef.stop());

    const edge = { log, clock, random };
    const nsmServer: GrpcServer = await startServer({
      listen: [{ url: nsmUrl, credentials: insecure() }],
      services: [
        networkServiceOf(nsmgr, edge),
        monitorConnectionService(monitor, { log }),
        ...proxy.services,
      ],
      log,
    });
    closers.push(() => nsmServer.close({ graceMs: 1_000 }));
    const remoteServer: GrpcServer = await startServer({
      listen: [{ url: config.agent.listen.remote, credentials: identity.serverCredentials }],
      services: [networkServiceOf(nsmgr, edge), monitorConnectionService(monitor, { log })],
      log,
    });
    closers.push(() => remoteServer.close({ graceMs: 1_000 }));
    identity.start();
    closers.push(() => identity.close());

    let ready = false;
    const control: AgentControl = {
      status: () => status(),
      async connect(request, signal) {
        const spec = await specs.addConnect(request);
        try {
          const c = await clientsRef.connect(spec, signal);
          const nsmgrId = clientsRef.nsmgrIdOf(c);
          const remoteUrl = nsmgrId === undefined ? undefined : journal.data.remotes.get(nsmgrId);
          return clientsRef.row(c, {
            device: dataplane.device.name,
            ...(remoteUrl === undefined ? {} : { remoteUrl }),
          });
        } catch (e: unknown) {
          await specs.removeConnect(spec.service, spec.netns).catch(() => undefined);
          throw e;
        }
      },
      async disconnect(request, signal) {
        const c = clientsRef.find(request.service, request.netns);
        await specs.removeConnect(request.service, request.netns);
        if (!c) {
          throw new AgentError('NOT_FOUND', `no connection to ${request.service}`, {
            hint: 'see nsm-agent status for the connections of this host',
          });
        }
        const row = clientsRef.row(c);
        await clientsRef.disconnect(c, signal);
        return row;
      },
      async expose(request) {
        const spec = await specs.addExpose(request);
        try {
          return exposeRow(await local.expose(spec));
        } catch (e: unknown) {
          await specs.removeExpose(spec.service).catch(() => undefined);
          throw e;
        }
      },
      async unexpose(request) {
        await specs.removeExpose(request.service);
        const gone = await local.unexpose(request.service);
        if (!gone) throw new AgentError('NOT_FOUND', `${request.service} is not exposed here`);
        return exposeRow(gone);
      },
      services: () => Promise.resolve(services()),
    };

    metrics.onCollect('agent', async (sink) => {
      const counts = { connecting: 0, up: 0, healing: 0, failed: 0 };
      for (const c of clientsRef.list()) counts[c.state]++;
      sink.connections(counts);
      sink.served(journal.data.served.size);
      sink.svidExpiry(identity.view.expiresAt);
      sink.registryProxy(proxy.metrics());
      const dev = await dataplane.show().catch(() => undefined);
      for (const p of dev?.peers ?? []) sink.handshake(p.publicKey, p.lastHandshakeMs);
    });
    const metricsServer = await startMetricsServer({
      listen: config.agent.listen.metrics,
      metrics,
      log,
      healthy: () => (ready ? { ok: true } : { ok: false, reason: 'starting' }),
    });
    closers.push(() => metricsServer.close());
    // Before the local API: status (served by it from here on, also while starting) reports them.
    const listen = {
      nsm: nsmServer.address,
      remote: remoteServer.address,
      api: config.agent.listen.api,
      metrics: metricsServer.url,
    };
    const api = await startLocalApi({ url: config.agent.listen.api, control, log });
    closers.push(() => api.close());

    // What the config and earlier runs declared: exposes (registered, queued if the control server
    // is unreachable), then connects (journaled ones refreshed with their old path: adopted).
    for (const spec of specs.exposes()) {
      try {
        await local.expose(spec);
      } catch (e: unknown) {
        log.error({ service: spec.service, err: describe(e) }, 'could not expose a declared service');
      }
    }
    // Journaled connections are refreshed through discover, which reads the proxy's cache: give the
    // upstream watch a moment to fill it, so an agent restarted by kill -9 adopts at once rather than
    // after a retry (bounded: with the control server down it goes on without).
    await untilUp(proxy, clock, 5_000);
    const claimed = new Set<string>();
    for (const spec of specs.connects()) claimed.add(clientsRef.keep(spec).key);
    await clientsRef.closeUnclaimed(claimed);
    adoptServed(journal, dataplane, monitor, clock, log, closers);
    const reconcile = dataplane.keepReconciled(clock, log);
    closers.push(() => reconcile.stop());
    ready = true;

    log.info({ spiffeId: id.spiffeId, publicUrl, listen, server: serverUrl }, 'agent ready');

    async function status(): Promise<StatusReport> {
      const dev = await dataplane.show().catch(() => undefined);
      const handshakes = new Map((dev?.peers ?? []).map((p) => [p.publicKey, p.lastHandshakeMs]));
      const now = clock.now();
      // Each connection's tunnel entry (`<nsmgr id>/<element>`), found in one pass over the
      // entries rather than one pass per connection.
      const peerOf = new Map<string, string>();
      for (const [k, e] of Object.entries(dataplane.forwarder.desired.entries)) {
        const slash = k.lastIndexOf('/'); // entryKey: <connection id>/<part>, and a part has no '/'
        if (e.kind === 'tunnel' && slash > 0 && !peerOf.has(k.slice(0, slash)))
          peerOf.set(k.slice(0, slash), e.peerPublicKey);
      }
      const rows: ConnectionRow[] = clientsRef.list().map((c) => {
        const nsmgrId = clientsRef.nsmgrIdOf(c);
        const peer = nsmgrId === undefined ? undefined : peerOf.get(nsmgrId);
        const hs = peer === undefined ? undefined : handshakes.get(peer);
        const remoteUrl = nsmgrId === undefined ? undefined : journal.data.remotes.get(nsmgrId);
        return clientsRef.row(c, {
          ...(hs ? { handshakeAgeSeconds: Math.round((now - hs) / 1000) } : {}),
          ...(remoteUrl === undefined ? {} : { remoteUrl }),
          device: dataplane.device.name,
        });
      });
      const view = identity.view;
      const ps = proxy.state;
      return {
        agent: {
          name,
          version: agentVersion(),
          pid: process.pid,
          startedAt: new Date(startedAt).toISOString(),
          ready,
          listen,
          publicUrl,
        },
        identity: {
          spiffeId: view.spiffeId,
          trustDomain: view.trustDomain,
          expiresAt: new Date(view.expiresAt).toISOString(),
          secondsToExpiry: Math.round((view.expiresAt - now) / 1000),
          ...(view.nextRenewalAt === undefined
            ? {}
            : { nextRenewalAt: new Date(view.nextRenewalAt).toISOString() }),
        },
        server: {
          url: serverUrl,
          state: ps.kind === 'down' ? 'connecting' : ps.kind,
          ...('sinceMs' in ps ? { since: new Date(ps.sinceMs).toISOString() } : {}),
          ...(ps.kind === 'down' ? { lastError: ps.error } : {}),
        },
        dataplane: {
          device: dataplane.device.name,
          backend: dataplane.backend,
          listenPort: dataplane.device.listenPort,
          publicKey: dataplane.publicKey,
        },
        connections: rows,
        exposes: local.list().map(exposeRow),
        served: journal.data.served.size,
      };
    }

    function services(): ServicesReport {
      const nses = proxy.findEndpoints(undefined);
      return {
        source: proxy.state.kind === 'up' ? 'registry' : 'cache',
        services: proxy
          .findServices(undefined)
          .sort((a, b) => a.name.localeCompare(b.name))
          .map((ns) => ({
            name: ns.name,
            payload: ns.payload,
            endpoints: nses
              .filter((e) => e.networkServiceNames.includes(ns.name))
              .map((e) => ({
                name: e.name,
                url: e.url,
                labels: { ...(e.networkServiceLabels[ns.name]?.labels ?? {}) },
                ...(e.expirationTime
                  ? { expiresAt: new Date(Number(e.expirationTime.seconds) * 1000).toISOString() }
                  : {}),
              })),
          })),
      };
    }

    let closing: Promise<void> | undefined;
    return {
      name,
      spiffeId: id.spiffeId,
      publicUrl,
      listen,
      control,
      close() {
        closing ??= closeAll(closers, log);
        return closing;
      },
    };
  } catch (e: unknown) {
    await closeAll(closers, log);
    throw e;
  }
}

async function untilUp(proxy: RegistryProxy, clock: Clock, ms: number): Promise<void> {
  const deadline = clock.now() + ms;
  while (proxy.state.kind !== 'up' && clock.now() < deadline) await clock.sleep(50);
}

function exposeRow(e: Exposed): ExposeRow {
  return {
    service: e.spec.service,
    cidr: e.ipam.cidr,
    labels: e.spec.labels,
    allow: e.spec.allow ?? [],
    source: e.spec.source,
    endpoint: e.endpoint,
    serviceAddress: e.ipam.serviceAddress,
    dnsName: serviceDnsName(e.spec.service),
    registration: e.registration,
    connections: e.connections.size,
  };
}

async function closeAll(closers: (() => Promise<void> | void)[], log: Logger): Promise<void> {
  for (const close of closers.reverse()) {
    try {
      await close();
    } catch (e: unknown) {
      log.warn({ err: describe(e) }, 'stopping a part of the agent failed');
    }
  }
  closers.length = 0;
}

/**
 * Served connections journaled by the previous run keep their data plane until their caller's token
 * would expire; a caller that heals in time makes them live again (in the monitor), the others are
 * removed then.
 */
function adoptServed(
  journal: Journal,
  dataplane: Dataplane,
  monitor: ConnectionMonitor,
  clock: Clock,
  log: Logger,
  closers: (() => Promise<void> | void)[],
): void {
  for (const [connId, { expiresAtMs }] of journal.data.served) {
    if (monitor.get(connId)) continue;
    const timer = clock.setTimer(Math.max(0, expiresAtMs - clock.now()), () => {
      if (monitor.get(connId)) return;
      const keys = Object.keys(dataplane.forwarder.desired.entries).filter((k) => k.startsWith(`${connId}/`));
      log.info(
        { connId, entries: keys.length },
        'a served connection was not refreshed after the restart: removing it',
      );
      journal.data.served.delete(connId);
      void dataplane.removeEntries(keys).catch((e: unknown) => {
        log.warn({ connId, err: describe(e) }, 'removing the stale connection failed');
      });
    });
    closers.push(() => timer.cancel());
  }
}

async function* subscribeRemote(
  remotes: RemoteAgents,
  url: string,
  selector: MonitorScopeSelector,
  signal: AbortSignal,
): AsyncIterable<ConnectionEvent> {
  const remote = await remotes.get(url, 5_000);
  yield* remote.monitor.monitorConnections(selector, { signal });
}

/** tcp://:5001 → tcp://<first non-loopback IPv4>:5001 (as NSM's listenonurl.GetPublicURL). */
function defaultPublicUrl(listen: string): string {
  const u = parseGrpcUrl(listen);
  if (u.kind !== 'tcp')
    throw new AgentError('CONFIG_INVALID', `the remote listener ${listen} must be tcp://`);
  if (u.host !== '' && u.host !== '0.0.0.0' && u.host !== '::') return listen;
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) {
      if (a.family === 'IPv4' && !a.internal) return `tcp://${a.address}:${u.port}`;
    }
  }
  throw new AgentError('CONFIG_INVALID', 'this host has no non-loopback IPv4 address to advertise', {
    hint: 'pass --public-url tcp://<address other hosts reach>:<port>',
  });
}

function tunnelIpOf(publicUrl: string): string {
  const u = parseGrpcUrl(publicUrl);
  const host = u.kind === 'tcp' ? u.host.replace(/^\[|\]$/g, '') : '';
  if (isIP(host) === 0) {
    throw new AgentError('CONFIG_INVALID', `the public URL ${publicUrl} must name an IP address`, {
      hint: 'WireGuard peers reach this host at that address: pass --public-url tcp://<ip>:<port>',
    });
  }
  return host;
}
