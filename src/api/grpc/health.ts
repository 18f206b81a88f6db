import { create } from '@bufbuild/protobuf';
import {
  Health,
  HealthCheckResponseSchema,
  HealthCheckResponse_ServingStatus as ServingStatus,
} from '../gen/health_pb.js';
import type { HealthCheckResponse } from '../gen/health_pb.js';
import { AgentError } from '../../errors/index.js';
import { implement } from './implement-service.js';
import type { ServiceRegistration } from './implement-service.js';

export { ServingStatus };

/**
 * Serving status per service name, as grpc.health.v1 reports it. "" is the whole server. NSM's
 * own servers set SERVING for each NSM service they implement (grpcutils.RegisterHealthServices),
 * and probes ask by the full proto name, e.g. `networkservice.NetworkService`.
 */
export interface HealthStatus {
  set(service: string, status: ServingStatus.SERVING | ServingStatus.NOT_SERVING): void;
  get(service: string): ServingStatus | undefined;
  /** Every service NOT_SERVING, open Watch streams get that and end; later set() calls are ignored. */
  shutdown(): void;
  readonly registration: ServiceRegistration;
}

type Watcher = (status: ServingStatus) => void;

export function createHealth(initial: readonly string[]): HealthStatus {
  const statuses = new Map<string, ServingStatus>();
  const watchers = new Map<string, Set<Watcher>>();
  const ended = new Set<() => void>();
  let isShutdown = false;

  const update = (service: string, status: ServingStatus): void => {
    if (statuses.get(service) === status) return;
    statuses.set(service, status);
    for (const w of watchers.get(service) ?? []) w(status);
  };
  for (const name of ['', ...initial]) update(name, ServingStatus.SERVING);

  const registration = implement(Health, {
    check(request) {
      const status = statuses.get(request.service);
      if (status === undefined) throw new AgentError('NOT_FOUND', `unknown service "${request.service}"`);
      return { status };
    },
    list() {
      const all: Record<string, HealthCheckResponse> = {};
      for (const [service, status] of statuses) all[service] = create(HealthCheckResponseSchema, { status });
      return { statuses: all };
    },
    async watch(request, stream, ctx) {
      // Per the protocol a Watch on an unknown service is not an error: it reports SERVICE_UNKNOWN
      // and stays open, because the service may be registered later.
      const pending: ServingStatus[] = [statuses.get(request.service) ?? ServingStatus.SERVICE_UNKNOWN];
      let wake: (() => void) | undefined;
      let done = isShutdown;
      const watcher: Watcher = (status) => {
        pending.push(status);
        wake?.();
      };
      const end = (): void => {
        done = true;
        wake?.();
      };
      const set = watchers.get(request.service) ?? new Set<Watcher>();
      watchers.set(request.service, set);
      set.add(watcher);
      ended.add(end);
      ctx.signal.addEventListener('abort', end, { once: true });
      try {
        for (;;) {
          const next = pending.shift();
          if (next !== undefined) {
            await stream.send({ status: next });
            continue;
          }
          if (done || ctx.signal.aborted) return;
          await new Promise<void>((resolve) => (wake = resolve));
          wake = undefined;
        }
      } finally {
        set.delete(watcher);
        // Peers may watch any name; drop empty entries so they cannot grow the map without bound.
        if (set.size === 0) watchers.delete(request.service);
        ended.delete(end);
        ctx.signal.removeEventListener('abort', end);
      }
    },
  });

  return {
    set(service, status) {
      if (!isShutdown) update(service, status);
    },
    get: (service) => statuses.get(service),
    shutdown() {
      if (isShutdown) return;
      isShutdown = true;
      for (const service of statuses.keys()) update(service, ServingStatus.NOT_SERVING);
      // Watchers first queue NOT_SERVING, then end, so graceful close is not held up by them.
      for (const end of [...ended]) end();
    },
    registration,
  };
}
