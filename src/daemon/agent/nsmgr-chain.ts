import { clone, ConnectionSchema, NetworkServiceRequestSchema } from '../../api/index.js';
import type { Connection, NetworkServiceRequest } from '../../api/index.js';
import {
  authorizeClient,
  authorizeServer,
  beginServer,
  buildChain,
  connectClient,
  ContextKey,
  serviceAllowedPolicy,
  timeoutServer,
  updatePathServer,
  updateTokenClient,
  updateTokenServer,
} from '../../chain/index.js';
import type { AllowedSpiffeIds, Chain, ChainContext, ChainElement } from '../../chain/index.js';
import type { HealClient } from '../../chain/heal/index.js';
import { monitorServer } from '../../chain/monitor/index.js';
import type { ConnectionMonitor } from '../../chain/monitor/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { kernelServer, wireguardClient, wireguardServer } from '../../forwarder/mechanisms/index.js';
import type { ForwarderEntries, WireguardOptions } from '../../forwarder/mechanisms/index.js';
import { discoverServer, roundRobinServer, selectedEndpointOf } from '../../nsmgr/index.js';
import type { RegistryLookup } from '../../nsmgr/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import { journalAtEdge, journaledAtEdge } from './journal.js';
import type { Journal } from './journal.js';
import type { RemoteAgent, RemoteAgents } from './remote-agents.js';

/** The agent's own exposes as the nsmgr sees them: endpoints served in this process. */
export interface LocalEndpointsView {
  /** The chain that serves endpoint `name`, or undefined when it is not one of ours. */
  chainOf(name: string): Chain | undefined;
}

export interface NsmgrChainOptions {
  /** This agent's path segment name (unique in the mesh). */
  readonly name: string;
  readonly spiffeId: string;
  readonly signer: TokenSigner;
  readonly forwarder: ForwarderEntries;
  readonly wireguard: Omit<WireguardOptions, 'forwarder'>;
  readonly lookup: RegistryLookup;
  readonly monitor: ConnectionMonitor;
  readonly heal: HealClient;
  readonly remotes: RemoteAgents;
  readonly local: LocalEndpointsView;
  readonly journal: Journal;
  /** The allow list of each service this agent exposes (service_allowed). */
  readonly allowed: AllowedSpiffeIds;
  /** Deadline of a call to a remote agent. */
  readonly remoteTimeoutMs: number;
}

const remoteKey = new ContextKey<RemoteAgent>('daemon/remote-agent');

/**
 * The nsmgr chain: one flat list that serves local clients (the agent's own workloads, in-process,
 * and NSM clients on nsm.sock) and remote agents (tcp mTLS), NSM sdk semantics (nsm-api.md §4.2):
 *
 *   updatepath → begin → journal → updatetoken → authorize (tokens + service_allowed) → timeout →
 *   monitor → served → discover → roundrobin → kernel (LOCAL, from a workload) / wireguard (REMOTE) →
 *   ┬ the endpoint is one of ours: its endpoint chain (local-endpoints.ts)
 *   └ else: mechanism translation → wireguard offer → dial the endpoint's agent → heal →
 *     updatetoken (aud = that agent) → authorize (its token signed by its SVID) → connect
 *
 * Every element does its part and undoes only its own work when a later one fails, so a refused or
 * failed request leaves no interface, address or peer behind.
 */
export function nsmgrChain(o: NsmgrChainOptions): Chain {
  const wg = { ...o.wireguard, forwarder: o.forwarder };
  return buildChain('nsmgr', [
    updatePathServer(o.name),
    beginServer(),
    journalCommit(o.journal, o.spiffeId),
    updateTokenServer({ signer: o.signer }),
    authorizeServer({ extra: [serviceAllowedPolicy(o.allowed)] }),
    timeoutServer(),
    monitorServer(o.monitor),
    servedJournal(o.journal, o.spiffeId),
    discoverServer({ lookup: o.lookup }),
    roundRobinServer(),
    kernelServer({ forwarder: o.forwarder }),
    wireguardServer(wg),
    localDispatch(o.local),
    mechanismTranslation(),
    wireguardClient(wg),
    remoteDial(o.remotes, o.journal, o.remoteTimeoutMs),
    o.heal,
    renamed('updatetoken-client', {
      ...updateTokenClient({ signer: o.signer, server: (ctx) => ctx.get(remoteKey)?.peer()?.token }),
      order: { requires: ['remote-dial'] },
    }),
    renamed(
      'authorize-client',
      authorizeClient({ serverCertificate: (ctx) => ctx.get(remoteKey)?.peer()?.certificate }),
    ),
    connectClient((ctx) => remoteOf(ctx).networkService, { timeoutMs: o.remoteTimeoutMs }),
  ]);
}

/** The remote URL heal watches for a request: the selected endpoint's agent, when it is not ours. */
export function remoteUrlOf(local: LocalEndpointsView) {
  return (ctx: ChainContext, _request: NetworkServiceRequest): string | undefined => {
    const nse = selectedEndpointOf(ctx);
    if (!nse || local.chainOf(nse.name)) return undefined;
    return nse.url;
  };
}

/**
 * The journal is written once per request and close, when the rest of the chain is done with it
 * (journalAtEdge): the elements below and the data plane only change its data. The answer waits for
 * the write. A Request of this agent's own client connections (the peer is this agent) is written by
 * ClientConnections, which records the connection itself once the chain returns: one write for both.
 */
function journalCommit(journal: Journal, ownSpiffeId: string): ChainElement {
  return {
    name: 'journal-commit',
    order: { after: ['begin'] },
    request: (ctx, request, next) =>
      journalAtEdge(journal, ctx, (c) => next.request(c, request), {
        writes: ctx.peer?.spiffeId !== ownSpiffeId,
      }),
    close: (ctx, connection, next) => journalAtEdge(journal, ctx, (c) => next.close(c, connection)),
  };
}

function renamed(name: string, e: ChainElement): ChainElement {
  return { ...e, name };
}

function remoteOf(ctx: ChainContext): RemoteAgent {
  const remote = ctx.get(remoteKey);
  if (!remote) {
    throw new AgentError('CHAIN_INVALID', 'connect has no remote agent to call', {
      hint: 'remote-dial must stand before connect in the nsmgr chain',
    });
  }
  return remote;
}

/**
 * When roundrobin picked one of this agent's own endpoints (an expose), the request ends in that
 * endpoint's chain here; otherwise it goes on to the remote part. Close goes by the endpoint name, so
 * it also works when the registry is unreachable.
 */
function localDispatch(local: LocalEndpointsView): ChainElement {
  return {
    name: 'local-dispatch',
    order: { after: ['roundrobin'] },
    request(ctx, request, next) {
      const name = selectedEndpointOf(ctx)?.name ?? request.connection?.networkServiceEndpointName ?? '';
      const chain = local.chainOf(name);
      return chain ? chain.request(ctx, request) : next.request(ctx, request);
    },
    close(ctx, connection, next) {
      const chain = local.chainOf(connection.networkServiceEndpointName);
      // A copy: the endpoint's updatepath rewrites the id to its own segment, and the elements
      // above (monitor, journal) go on with this hop's id after Close returns.
      return chain ? chain.close(ctx, clone(ConnectionSchema, connection)) : next.close(ctx, connection);
    },
  };
}

/**
 * NSM `mechanismtranslation`: the next hop gets no mechanism and no preferences of this hop's
 * caller (the client elements after this add their own); the caller gets back the mechanism it
 * selected with this hop, not the next hop's.
 */
export function mechanismTranslation(): ChainElement {
  return {
    name: 'mechanism-translation',
    async request(ctx, request, next) {
      const incoming = request.connection?.mechanism;
      const out = clone(NetworkServiceRequestSchema, request);
      out.mechanismPreferences = [];
      if (out.connection) out.connection.mechanism = undefined;
      const conn = await next.request(ctx, out);
      conn.mechanism = incoming;
      return conn;
    },
    close(ctx, connection, next) {
      const out = clone(ConnectionSchema, connection);
      out.mechanism = undefined;
      return next.close(ctx, out);
    },
  };
}

/**
 * Connects to the agent of the selected endpoint (TLS done, so its SPIFFE ID is known to address
 * the token to) and journals where the connection went, for Close when the registry no longer has
 * the endpoint (written by journal-commit with the rest of the request). Undoes the journal entry
 * when the rest fails for a new connection.
 */
function remoteDial(remotes: RemoteAgents, journal: Journal, timeoutMs: number): ChainElement {
  const dialFor = async (ctx: ChainContext, conn: Connection): Promise<ChainContext> => {
    const url = selectedEndpointOf(ctx)?.url ?? journal.data.remotes.get(conn.id);
    if (url === undefined || url === '') {
      throw new AgentError('NOT_FOUND', `connection ${conn.id}: the endpoint's agent is unknown`, {
        hint: 'the endpoint is not in the registry any more; the local side is cleaned up',
      });
    }
    return ctx.with(remoteKey, await remotes.get(url, Math.min(timeoutMs, ctx.remaining())));
  };
  return {
    name: 'remote-dial',
    async request(ctx, request, next) {
      const conn = request.connection;
      if (!conn) return next.request(ctx, request);
      const known = journal.data.remotes.get(conn.id);
      const dialled = await dialFor(ctx, conn);
      const url = remoteOf(dialled).url;
      try {
        const out = await next.request(dialled, request);
        if (known !== url) {
          journal.data.remotes.set(conn.id, url);
          await journal.flushUnlessAtEdge(ctx);
        }
        return out;
      } catch (e: unknown) {
        if (known === undefined && journal.data.remotes.has(conn.id)) {
          journal.data.remotes.delete(conn.id);
          await journal.flushUnlessAtEdge(ctx);
        }
        throw e;
      }
    },
    async close(ctx, connection, next) {
      let dialled: ChainContext;
      try {
        dialled = await dialFor(ctx, connection);
      } catch (e: unknown) {
        ctx.log.warn(
          { connId: connection.id, err: describe(e) },
          'cannot reach the remote agent to close the connection there; its timeout will close it',
        );
        await forget(journal, connection.id, ctx);
        return;
      }
      try {
        await next.close(dialled, connection);
      } finally {
        await forget(journal, connection.id, ctx);
      }
    },
  };
}

async function forget(journal: Journal, id: string, ctx: ChainContext): Promise<void> {
  if (!journal.data.remotes.has(id)) return;
  journal.data.remotes.delete(id);
  await journal.flushUnlessAtEdge(ctx);
}

/**
 * Journals the connections this agent serves for other agents (with the expiry of their caller's
 * token), so a restarted agent keeps their data plane until the caller has had its chance to heal.
 * The record is made before the rest of the chain runs; journal-commit writes it with everything else
 * of the request (outside a journal edge, the data plane's write for the connection's entries holds
 * it). A failed request puts back what was there.
 */
function servedJournal(journal: Journal, ownSpiffeId: string): ChainElement {
  const servedUntil = (conn: Connection | undefined): number => {
    const path = conn?.path;
    const prev = path?.pathSegments[path.index - 1]?.expires;
    return prev ? Number(prev.seconds) * 1000 + Math.floor(prev.nanos / 1e6) : Date.now();
  };
  return {
    name: 'served-journal',
    order: { after: ['timeout'] },
    async request(ctx, request, next) {
      const id = request.connection?.id;
      if (ctx.peer?.spiffeId === undefined || ctx.peer.spiffeId === ownSpiffeId || id === undefined) {
        return next.request(ctx, request);
      }
      const before = journal.data.served.get(id);
      const expiresAtMs = servedUntil(request.connection);
      journal.data.served.set(id, { expiresAtMs });
      const mark = journal.mark();
      const edge = journaledAtEdge(ctx);
      let conn: Connection;
      try {
        conn = await next.request(ctx, request);
      } catch (e: unknown) {
        if (before === undefined) journal.data.served.delete(id);
        else journal.data.served.set(id, before);
        if (!edge) {
          await journal.flush().catch((fe: unknown) => {
            ctx.log.warn({ connId: id, err: describe(fe) }, 'cannot journal the failed request');
          });
        }
        throw e;
      }
      const until = servedUntil(conn);
      if (conn.id === id && until === expiresAtMs) {
        if (!edge) await journal.flushSince(mark);
        return conn;
      }
      // The chain below changed the id or the caller's expiry: journal what it returned.
      if (conn.id !== id) {
        if (before === undefined) journal.data.served.delete(id);
        else journal.data.served.set(id, before);
      }
      journal.data.served.set(conn.id, { expiresAtMs: until });
      if (!edge) await journal.flush();
      return conn;
    },
    async close(ctx, connection, next) {
      // The elements after this one may rewrite connection.id in place (an expose's updatepath).
      const id = connection.id;
      try {
        await next.close(ctx, connection);
      } finally {
        if (journal.data.served.has(id)) {
          journal.data.served.delete(id);
          await journal.flushUnlessAtEdge(ctx);
        }
      }
    },
  };
}
