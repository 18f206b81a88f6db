// A scriptable AgentControl for tests of the local API and the CLI commands that call it: it
// answers with realistic rows (or the error a test sets), records every call with its signal, and
// can hold a call open until the caller goes away.
import type {
  AgentControl,
  ConnectionRow,
  ConnectRequest,
  DisconnectRequest,
  ExposeRequest,
  ExposeRow,
  ServicesReport,
  StatusReport,
  UnexposeRequest,
} from '../../src/localapi/index.js';

export type FakeMethod = keyof AgentControl;

export interface FakeCall {
  readonly method: FakeMethod;
  readonly request?: unknown;
  readonly signal?: AbortSignal;
}

export const sampleConnection: ConnectionRow = {
  id: 'conn-7f3a',
  service: 'db-net',
  labels: { app: 'billing' },
  source: 'cli',
  state: 'up',
  endpoint: 'host-b-db-net',
  remoteUrl: 'tcp://10.0.0.2:5001',
  localAddresses: ['169.254.0.2/32'],
  serviceAddresses: ['169.254.0.1/32'],
  dnsName: 'db-net.nsm',
  interface: 'nsm-wg0',
  handshakeAgeSeconds: 12,
  establishedAt: '2026-12-01T10:00:00.000Z',
  refreshedAt: '2026-12-01T10:05:00.000Z',
  heals: 1,
};

export const sampleExpose: ExposeRow = {
  service: 'payments',
  cidr: '169.254.0.0/16',
  labels: { tier: 'gold' },
  allow: ['spiffe://mesh.example/agent/*'],
  source: 'cli',
  endpoint: 'host-a-payments',
  serviceAddress: '169.254.0.1/32',
  dnsName: 'payments.nsm',
  registration: 'registered',
  connections: 2,
};

export const sampleStatus: StatusReport = {
  agent: {
    name: 'host-a',
    version: '0.1.0',
    pid: 4242,
    startedAt: '2026-12-01T09:00:00.000Z',
    ready: true,
    listen: {
      nsm: 'unix:///run/nsm-agent/nsm.sock',
      remote: 'tcp://:5001',
      api: 'unix:///run/nsm-agent/api.sock',
      metrics: '127.0.0.1:9464',
    },
    publicUrl: 'tcp://10.0.0.1:5001',
  },
  identity: {
    spiffeId: 'spiffe://mesh.example/agent/h-1234',
    trustDomain: 'mesh.example',
    expiresAt: '2026-12-02T09:00:00.000Z',
    secondsToExpiry: 7_200,
    nextRenewalAt: '2026-12-01T21:00:00.000Z',
  },
  server: { url: 'tcp://ctl.example:5002', state: 'up', since: '2026-12-01T09:00:01.000Z' },
  dataplane: { device: 'nsm-wg0', backend: 'kernel', listenPort: 51820, publicKey: 'cHVibGljLWtleQ==' },
  connections: [sampleConnection],
  exposes: [sampleExpose],
  served: 3,
};

export const sampleServices: ServicesReport = {
  source: 'registry',
  services: [
    {
      name: 'db-net',
      payload: 'IP',
      endpoints: [
        { name: 'host-b-db-net', url: 'tcp://10.0.0.2:5001', labels: { region: 'eu' } },
        { name: 'host-c-db-net', url: 'tcp://10.0.0.3:5001', labels: {} },
      ],
    },
  ],
};

/**
 * Answers with the sample rows (echoing the request's service, netns and labels) unless a test
 * set `fail` (an error to reject with) or `hang` (wait until the caller's signal aborts) for a method.
 */
export class FakeAgentControl implements AgentControl {
  readonly calls: FakeCall[] = [];
  readonly fail = new Map<FakeMethod, Error>();
  readonly hang = new Set<FakeMethod>();
  statusReport: StatusReport = sampleStatus;
  servicesReport: ServicesReport = sampleServices;
  exposeRow: ExposeRow = sampleExpose;
  /** Resolves with the signal of the next call that hangs, once it is aborted. */
  #aborted: ((s: AbortSignal) => void)[] = [];

  status(): Promise<StatusReport> {
    return this.#answer({ method: 'status' }, this.statusReport);
  }

  services(signal: AbortSignal): Promise<ServicesReport> {
    return this.#answer({ method: 'services', signal }, this.servicesReport);
  }

  connect(request: ConnectRequest, signal: AbortSignal): Promise<ConnectionRow> {
    return this.#answer({ method: 'connect', request, signal }, connectionFor(request));
  }

  disconnect(request: DisconnectRequest, signal: AbortSignal): Promise<ConnectionRow> {
    return this.#answer({ method: 'disconnect', request, signal }, connectionFor({ ...request, labels: {} }));
  }

  expose(request: ExposeRequest, signal: AbortSignal): Promise<ExposeRow> {
    return this.#answer(
      { method: 'expose', request, signal },
      {
        ...this.exposeRow,
        service: request.service,
        labels: request.labels,
        allow: request.allow ?? [],
        ...(request.cidr === undefined ? {} : { cidr: request.cidr }),
        dnsName: `${request.service}.nsm`,
      },
    );
  }

  unexpose(request: UnexposeRequest, signal: AbortSignal): Promise<ExposeRow> {
    return this.#answer(
      { method: 'unexpose', request, signal },
      { ...this.exposeRow, service: request.service },
    );
  }

  /** The signal of the next hanging call, once its caller has gone away. */
  nextAbort(): Promise<AbortSignal> {
    return new Promise((resolve) => this.#aborted.push(resolve));
  }

  async #answer<T>(call: FakeCall, value: T): Promise<T> {
    this.calls.push(call);
    const failure = this.fail.get(call.method);
    if (failure !== undefined) throw failure;
    const { signal } = call;
    if (this.hang.has(call.method) && signal !== undefined) {
      await new Promise<void>((resolve) => {
        if (signal.aborted) resolve();
        else signal.addEventListener('abort', () => resolve(), { once: true });
      });
      for (const r of this.#aborted.splice(0)) r(signal);
      throw new Error(`${call.method}: the caller went away`, { cause: signal.reason });
    }
    return value;
  }
}

function connectionFor(request: ConnectRequest): ConnectionRow {
  return {
    ...sampleConnection,
    service: request.service,
    labels: request.labels,
    dnsName: `${request.service}.nsm`,
    ...(request.netns === undefined ? {} : { netns: request.netns, interface: 'nsm-db0' }),
  };
}
