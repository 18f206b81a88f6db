import {
  clone,
  create,
  MechanismSchema,
  MechanismType,
  NetworkServiceEndpointSchema,
  NetworkServiceSchema,
  Payload,
} from '../../api/index.js';
import type { Connection, NetworkServiceEndpoint } from '../../api/index.js';
import { setSegmentToken } from '../../chain/updatetoken/common.js';
import { buildChain, updatePathServer, updateTokenClient } from '../../chain/index.js';
import type { Chain, ChainElement } from '../../chain/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { kernelClient } from '../../forwarder/mechanisms/index.js';
import type { Logger } from '../../log/index.js';
import type { RegistryProxy } from '../../registry/proxy/index.js';
import {
  dnsContextServer,
  endpointName,
  ipamServer,
  serviceDnsName,
  ServiceIpam,
} from '../../workloads/index.js';
import type { SourcedExpose } from '../../workloads/index.js';
import type { Dataplane } from './dataplane.js';
import { mechanismTranslation } from './nsmgr-chain.js';
import type { LocalEndpointsView } from './nsmgr-chain.js';

/** One exposed service: its endpoint (in this process), addresses and registration. */
export interface Exposed {
  readonly spec: SourcedExpose;
  readonly endpoint: string;
  readonly ipam: ServiceIpam;
  readonly chain: Chain;
  /** This agent's connection ids served by it (the nsmgr segment's). */
  readonly connections: Set<string>;
  registration: 'registered' | 'queued';
}

/** Far enough that the proxy never expires our own registration locally (it refreshes upstream itself). */
const LOCAL_REGISTRATION_MS = 10 * 365 * 24 * 3600_000;

/**
 * The agent's exposes: each is an NSM endpoint served in this process — the legacy process behind it
 * is just a program listening on the host. A connection to it gets a client address from the
 * service's range and the stable service address on this host's WireGuard device (KERNEL, host
 * netns); the endpoint is registered through the local registry proxy, so the mesh sees it at this
 * agent's URL, and stays registered (queued) while the control server is unreachable.
 */
export class LocalEndpoints implements LocalEndpointsView {
  readonly #byName = new Map<string, Exposed>();
  readonly #byService = new Map<string, Exposed>();
  /** Endpoints unexposed while connections still held them: Close still finds their chain. */
  readonly #retired = new Map<string, Chain>();

  constructor(
    private readonly o: {
      readonly agentName: string;
      readonly localUrl: string;
      readonly signer: TokenSigner;
      readonly dataplane: Dataplane;
      readonly proxy: RegistryProxy;
      readonly log: Logger;
    },
  ) {}

  chainOf(name: string): Chain | undefined {
    return this.#byName.get(name)?.chain ?? this.#retired.get(name);
  }

  /** The allow list of a service exposed here (undefined: not ours, or everyone in the mesh). */
  allowed(service: string): readonly string[] | undefined {
    const allow = this.#byService.get(service)?.spec.allow;
    return allow === undefined || allow.length === 0 ? undefined : allow;
  }

  list(): Exposed[] {
    return [...this.#byService.values()];
  }

  get(service: string): Exposed | undefined {
    return this.#byService.get(service);
  }

  /** Starts serving and registers; the registration is queued when the control server is unreachable. */
  async expose(spec: SourcedExpose): Promise<Exposed> {
    const existing = this.#byService.get(spec.service);
    if (existing) return existing;
    const endpoint = endpointName(this.o.agentName, spec.service);
    const ipam = new ServiceIpam({ service: spec.service, cidr: spec.cidr });
    const connections = new Set<string>();
    const chain = buildChain(`endpoint ${endpoint}`, [
      mechanismTranslation(),
      // The nsmgr's own segment is addressed to the next hop, the endpoint (this agent too), as its
      // client side does for a remote hop: tokens_chained holds over the whole path.
      {
        ...updateTokenClient({ signer: this.o.signer, server: { spiffeId: this.o.signer.spiffeId } }),
        name: 'nsmgr-token',
        order: {},
      },
      kernelClient({ forwarder: this.o.dataplane }),
      tracked(connections),
      updatePathServer(endpoint),
      ownToken(this.o.signer),
      ipamServer(ipam),
      dnsContextServer({ service: spec.service }),
      hostProcessEndpoint(),
    ]);
    const exposed: Exposed = { spec, endpoint, ipam, chain, connections, registration: 'queued' };
    this.#retired.delete(endpoint);
    this.#byName.set(endpoint, exposed);
    this.#byService.set(spec.service, exposed);
    try {
      await this.#register(exposed);
    } catch (e: unknown) {
      this.#byName.delete(endpoint);
      this.#byService.delete(spec.service);
      throw e;
    }
    this.o.log.info(
      {
        service: spec.service,
        endpoint,
        serviceAddress: ipam.serviceAddress,
        dnsName: serviceDnsName(spec.service),
        registration: exposed.registration,
      },
      'exposed',
    );
    return exposed;
  }

  /** Unregisters and takes down the data plane of every connection it served. */
  async unexpose(service: string): Promise<Exposed | undefined> {
    const exposed = this.#byService.get(service);
    if (!exposed) return undefined;
    this.#byService.delete(service);
    this.#byName.delete(exposed.endpoint);
    if (exposed.connections.size > 0) this.#retired.set(exposed.endpoint, exposed.chain);
    try {
      await this.o.proxy.unregisterEndpoint(this.#record(exposed));
    } catch (e: unknown) {
      this.o.log.warn(
        { service, err: describe(e) },
        'unregistering the endpoint failed; it expires upstream',
      );
    }
    for (const id of exposed.connections) {
      const keys = Object.keys(this.o.dataplane.forwarder.desired.entries).filter((k) =>
        k.startsWith(`${id}/`),
      );
      await this.o.dataplane.removeEntries(keys);
    }
    this.o.log.info({ service, endpoint: exposed.endpoint }, 'unexposed');
    return exposed;
  }

  /** Registers every expose again (after a restart; the proxy then restores them upstream). */
  async #register(exposed: Exposed): Promise<void> {
    try {
      await this.o.proxy.registerService(
        create(NetworkServiceSchema, { name: exposed.spec.service, payload: Payload.IP }),
      );
    } catch (e: unknown) {
      // Another host exposing the same service registered it first: that is fine.
      if (!AgentError.is(e, 'ALREADY_EXISTS') && !AgentError.is(e, 'PERMISSION_DENIED')) throw e;
    }
    const { upstream } = await this.o.proxy.registerEndpoint(this.#record(exposed));
    exposed.registration = upstream;
  }

  #record(exposed: Exposed): NetworkServiceEndpoint {
    const expires = Date.now() + LOCAL_REGISTRATION_MS;
    return create(NetworkServiceEndpointSchema, {
      name: exposed.endpoint,
      networkServiceNames: [exposed.spec.service],
      networkServiceLabels: { [exposed.spec.service]: { labels: { ...exposed.spec.labels } } },
      url: this.o.localUrl,
      expirationTime: { seconds: BigInt(Math.floor(expires / 1000)), nanos: 0 },
    });
  }
}

/** Remembers which connections the endpoint serves (for unexpose and status). */
function tracked(ids: Set<string>): ChainElement {
  return {
    name: 'tracked',
    async request(ctx, request, next) {
      const conn = await next.request(ctx, request);
      ids.add(conn.id);
      return conn;
    },
    async close(ctx, connection, next) {
      // updatepath below rewrites connection.id in place (to the endpoint's segment): keep ours.
      const id = connection.id;
      try {
        await next.close(ctx, connection);
      } finally {
        ids.delete(id);
      }
    },
  };
}

/**
 * The endpoint's own path segment gets a token like every hop's (its expiry bounds the client's
 * refresh). A server's token: the one minted for the same exp second is reused (same claims).
 */
function ownToken(signer: TokenSigner): ChainElement {
  const mint = (conn: Connection): void => {
    const own = conn.path?.pathSegments[conn.path.index];
    if (own) setSegmentToken(own, signer.mint({ spiffeId: signer.spiffeId }, { reuse: true }));
  };
  return {
    name: 'endpoint-token',
    request(ctx, request, next) {
      if (request.connection) mint(request.connection);
      return next.request(ctx, request);
    },
    close: (ctx, connection, next) => next.close(ctx, connection),
  };
}

/**
 * The end of an expose's chain: the legacy process is a plain program in the host's netns, so the
 * endpoint answers KERNEL without a netns (its addresses go on the WireGuard device).
 */
function hostProcessEndpoint(): ChainElement {
  return {
    name: 'host-process',
    request(_ctx, request) {
      const conn = request.connection;
      if (!conn) {
        return Promise.reject(
          new AgentError('INVALID_ARGUMENT', 'request has no connection', {
            hint: 'send a NetworkServiceRequest whose connection names the network service',
          }),
        );
      }
      const kernel = request.mechanismPreferences.find((m) => m.type === MechanismType.KERNEL);
      if (!kernel) {
        return Promise.reject(
          new AgentError(
            'INVALID_ARGUMENT',
            `endpoint of ${conn.networkService} supports only the KERNEL mechanism`,
            {
              hint: 'this agent serves its exposes locally over KERNEL; remote agents reach it over WIREGUARD',
            },
          ),
        );
      }
      const m = clone(MechanismSchema, kernel);
      conn.mechanism = m;
      return Promise.resolve(conn);
    },
    close: () => Promise.resolve(),
  };
}
