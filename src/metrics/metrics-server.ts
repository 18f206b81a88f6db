import { createServer } from 'node:http';
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { AgentError, describe } from '../errors/index.js';
import { systemClock } from '../host/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import type { AgentMetrics } from './agent-metrics.js';
import { formatHostPort, listenConfigHint, parseListenAddress } from './listen-address.js';

/** What /healthz reports: ok, or why not (the response body of the 503). */
export type HealthVerdict = { readonly ok: true } | { readonly ok: false; readonly reason: string };

export interface MetricsServerOptions {
  /** `[host]:port`; a bare `:port` is 127.0.0.1 (config agent.listen.metrics, --listen-metrics). */
  readonly listen: string;
  readonly metrics: Pick<AgentMetrics, 'scrape' | 'contentType'>;
  readonly log: Logger;
  /** Asked on every GET /healthz; absent: the agent is healthy whenever it answers. */
  readonly healthy?: () => HealthVerdict | Promise<HealthVerdict>;
  readonly clock?: Clock;
  /** A healthy() that has not answered by then is a 503 (default 5 s). */
  readonly healthTimeoutMs?: number;
}

export interface MetricsServer {
  /** `http://host:port` as bound (the real port when `listen` asked for 0). */
  readonly url: string;
  readonly port: number;
  /** Stops listening and drops open connections. */
  close(): Promise<void>;
}

const textPlain = 'text/plain; charset=utf-8';

/**
 * Serves GET /metrics (Prometheus text) and GET /healthz on a loopback address by default. Other
 * paths are 404, other methods on these paths 405. Resolves once listening; a busy or foreign
 * address is an AgentError naming the setting to change.
 */
export async function startMetricsServer(o: MetricsServerOptions): Promise<MetricsServer> {
  const { host, port } = parseListenAddress(o.listen);
  const log = o.log.child({ subsystem: 'metrics' });
  const clock = o.clock ?? systemClock;
  const healthTimeoutMs = o.healthTimeoutMs ?? 5_000;

  const health = async (): Promise<HealthVerdict> => {
    if (o.healthy === undefined) return { ok: true };
    let timer: { cancel(): void } | undefined;
    try {
      return await Promise.race([
        Promise.resolve().then(o.healthy),
        new Promise<HealthVerdict>((resolve) => {
          timer = clock.setTimer(healthTimeoutMs, () => {
            resolve({ ok: false, reason: `the health check did not answer within ${healthTimeoutMs} ms` });
          });
        }),
      ]);
    } catch (e: unknown) {
      return { ok: false, reason: `the health check failed: ${describe(e)}` };
    } finally {
      timer?.cancel();
    }
  };

  const handle = async (req: IncomingMessage, res: ServerResponse): Promise<void> => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics' && path !== '/healthz') {
      send(res, req, 404, textPlain, 'not found: this server has /metrics and /healthz\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.setHeader('Allow', 'GET, HEAD');
      send(res, req, 405, textPlain, `${req.method ?? ''} is not allowed on ${path}: use GET\n`);
      return;
    }
    if (path === '/healthz') {
      const v = await health();
      send(res, req, v.ok ? 200 : 503, textPlain, v.ok ? 'ok\n' : `${v.reason}\n`);
      return;
    }
    try {
      const body = await o.metrics.scrape();
      send(res, req, 200, o.metrics.contentType, body);
    } catch (e: unknown) {
      log.error({ err: describe(e) }, 'metrics: rendering /metrics failed');
      send(res, req, 500, textPlain, `cannot render the metrics: ${describe(e)}\n`);
    }
  };

  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      log.error({ err: describe(e) }, 'metrics: request failed');
      if (!res.headersSent) send(res, req, 500, textPlain, 'internal error\n');
      else res.destroy();
    });
  });
  // A scraper answers in milliseconds; a client that does not is not a scraper.
  server.requestTimeout = 30_000;
  server.headersTimeout = 10_000;

  await new Promise<void>((resolve, reject) => {
    const onError = (e: NodeJS.ErrnoException): void => {
      reject(listenError(e, formatHostPort(host, port)));
    };
    server.once('error', onError);
    server.listen({ host, port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  server.on('error', (e: unknown) => {
    log.error({ err: describe(e) }, 'metrics: server error');
  });

  const bound = (server.address() as AddressInfo).port;
  const url = `http://${formatHostPort(host, bound)}`;
  log.info({ url }, `metrics: serving ${url}/metrics and ${url}/healthz`);
  return {
    url,
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
        server.closeAllConnections();
      }),
  };
}

function send(res: ServerResponse, req: IncomingMessage, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(req.method === 'HEAD' ? undefined : body);
}

function listenError(e: NodeJS.ErrnoException, address: string): AgentError {
  const what = `cannot serve /metrics on ${address}`;
  switch (e.code) {
    case 'EADDRINUSE':
      return new AgentError('UNAVAILABLE', `${what}: the address is in use`, {
        cause: e,
        hint: `another process listens there (ss -ltnp shows which; perhaps another nsm-agent): stop it, or ${listenConfigHint}`,
      });
    case 'EADDRNOTAVAIL':
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return new AgentError('CONFIG_INVALID', `${what}: the host is not an address of this machine`, {
        cause: e,
        hint: listenConfigHint,
      });
    case 'EACCES':
      return new AgentError('PERMISSION_DENIED', `${what}: permission denied`, {
        cause: e,
        hint: `ports below 1024 need root or CAP_NET_BIND_SERVICE; ${listenConfigHint}`,
      });
    default:
      return new AgentError('UNAVAILABLE', `${what}: ${describe(e)}`, { cause: e, hint: listenConfigHint });
  }
}
