import { MonitorConnectionService } from '../../api/index.js';
import { implement } from '../../api/grpc/index.js';
import type { ServiceRegistration } from '../../api/grpc/index.js';
import type { Logger } from '../../log/index.js';
import type { ConnectionMonitor } from './monitor.js';

export interface MonitorServiceOptions {
  readonly log: Logger;
}

/**
 * `connection.MonitorConnection/MonitorConnections` served from `monitor`: one INITIAL_STATE_TRANSFER
 * with every matching connection, then UPDATE/DELETE for matching ones, until the caller cancels or
 * the server closes. A caller that stops reading has its stream ended with RESOURCE_EXHAUSTED once its
 * backlog is full (ConnectionMonitorOptions.maxBacklog).
 */
export function monitorConnectionService(
  monitor: ConnectionMonitor,
  options: MonitorServiceOptions,
): ServiceRegistration {
  return implement(MonitorConnectionService, {
    monitorConnections: async (selector, stream, call) => {
      const log = options.log.child({ peer: call.peer.spiffeId ?? call.peer.address });
      log.debug(
        { segments: selector.pathSegments.length, services: selector.networkServices },
        'monitor subscriber connected',
      );
      try {
        for await (const event of monitor.subscribe(selector, call.signal)) {
          await stream.send(event);
        }
      } catch (e: unknown) {
        // The caller went away: nothing more can reach it, and that is no error of ours.
        if (call.signal.aborted) return;
        log.warn({ err: e }, 'monitor stream ended with an error');
        throw e;
      } finally {
        log.debug('monitor subscriber gone');
      }
    },
  });
}
