import { describe } from '../../errors/index.js';
import { runPeriodically, systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import type { ServerPki } from './mesh-ca.js';
import { refreshServerSvid } from './refresh-server-svid.js';

export interface ServerSvidRefreshOptions {
  readonly dataDir: string;
  /** Called with the new PKI after server.pem was replaced; swap it into the listeners here. */
  readonly onRefreshed: (pki: ServerPki) => void;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** Longest wait between two looks at the certificate (default 6 h). */
  readonly checkEveryMs?: number;
  /** After a failed refresh (disk full, unreadable CA key…), try again after this long (default 10 min). */
  readonly retryMs?: number;
}

/**
 * Keeps a running control server's own SVID fresh: at half its lifetime (refreshServerSvid's rule)
 * the certificate is re-issued with the same key and lifetime and handed to `onRefreshed`, so new
 * connections get it without a restart — a server that runs for longer than its SVID lives never
 * starts refusing every host. Failures are logged and retried; stop() cancels the timer and waits
 * for a refresh in flight.
 */
export function keepServerSvidFresh(
  pki: ServerPki,
  options: ServerSvidRefreshOptions,
): { stop(): Promise<void> } {
  const clock = options.clock ?? systemClock;
  const log = (options.log ?? silentLogger()).child({ subsystem: 'server-svid' });
  const checkEveryMs = options.checkEveryMs ?? 6 * 3600_000;
  const retryMs = options.retryMs ?? 600_000;
  let current = pki;
  // The next look: at half-life, but at least every checkEveryMs and never sooner than 1 s.
  const nextCheck = (): number => {
    const { notBefore, notAfter } = current.server;
    const untilDue = notBefore + (notAfter - notBefore) / 2 - clock.now();
    return Math.max(1_000, Math.min(untilDue, checkEveryMs));
  };
  return runPeriodically(
    clock,
    async () => {
      try {
        const { notBefore, notAfter } = current.server;
        const next = await refreshServerSvid(current, {
          dataDir: options.dataDir,
          clock,
          ttlMs: notAfter - notBefore,
        });
        if (next !== current) {
          current = next;
          options.onRefreshed(next);
          log.info(
            { serial: next.server.serial, expiresAt: new Date(next.server.notAfter).toISOString() },
            'server SVID re-issued; new connections use it',
          );
        }
        return nextCheck();
      } catch (e: unknown) {
        log.error(
          { err: describe(e), expiresAt: new Date(current.server.notAfter).toISOString() },
          'could not re-issue the server SVID; will try again (the current one is still served)',
        );
        return retryMs;
      }
    },
    // startControlServer has just checked the SVID: the first look is at the next check time.
    nextCheck(),
  );
}
