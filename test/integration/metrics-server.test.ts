// The /metrics endpoint as Prometheus sees it: a real HTTP server on loopback, scraped over TCP.
import { createServer } from 'node:net';
import type { Server } from 'node:net';
import test from 'ava';
import { AgentError } from '../../src/errors/index.js';
import { createLogger, silentLogger } from '../../src/log/index.js';
import { AgentMetrics, parseListenAddress, startMetricsServer } from '../../src/metrics/index.js';
import type { HealthVerdict, MetricsServer } from '../../src/metrics/index.js';

async function serve(
  t: { teardown(fn: () => Promise<void>): void },
  o: { metrics?: AgentMetrics; healthy?: () => HealthVerdict | Promise<HealthVerdict> } = {},
): Promise<{ server: MetricsServer; metrics: AgentMetrics }> {
  const log = silentLogger();
  const metrics = o.metrics ?? new AgentMetrics({ log });
  const server = await startMetricsServer({
    listen: '127.0.0.1:0',
    metrics,
    log,
    ...(o.healthy ? { healthy: o.healthy } : {}),
  });
  t.teardown(() => server.close());
  return { server, metrics };
}

test('GET /metrics: Prometheus text with the fed values and its content type', async (t) => {
  const { server, metrics } = await serve(t);
  t.regex(server.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  metrics.setConnections({ up: 4 });
  metrics.observeSetup(0.03, true);
  metrics.heal('lost');
  metrics.onCollect('wireguard', (sink) => {
    sink.handshake('k1=', Date.now() - 5_000);
  });
  metrics.onCollect('broken', () => {
    throw new Error('boom');
  });

  const res = await fetch(`${server.url}/metrics`);
  t.is(res.status, 200);
  t.is(res.headers.get('content-type'), 'text/plain; version=0.0.4; charset=utf-8');
  const body = await res.text();
  t.regex(body, /^nsm_agent_connections\{state="up"\} 4$/m);
  t.regex(body, /^nsm_agent_connection_setup_seconds_bucket\{le="0\.05",result="ok"\} 1$/m);
  t.regex(body, /^nsm_agent_heals_total\{result="lost"\} 1$/m);
  t.regex(body, /^nsm_agent_wireguard_handshake_age_seconds\{peer="k1="\} [45](\.\d+)?$/m);
  t.regex(body, /^nsm_agent_metrics_collect_errors_total\{source="broken"\} 1$/m);
  t.regex(body, /^process_resident_memory_bytes \d+$/m);
  // Every sample line parses as `name{labels} value`.
  for (const line of body.split('\n').filter((l) => l !== '' && !l.startsWith('#'))) {
    t.regex(line, /^[a-z_:][a-z0-9_:]*(\{.*\})? -?(\d+(\.\d+)?(e[+-]?\d+)?|NaN|\+Inf|-Inf)$/i, line);
  }

  const head = await fetch(`${server.url}/metrics`, { method: 'HEAD' });
  t.is(head.status, 200);
  t.is(await head.text(), '');
});

test('other paths are 404, other methods 405', async (t) => {
  const { server } = await serve(t);
  for (const path of ['/', '/metrics/x', '/favicon.ico']) {
    const res = await fetch(`${server.url}${path}`);
    t.is(res.status, 404, path);
    t.regex(await res.text(), /\/metrics and \/healthz/);
  }
  const post = await fetch(`${server.url}/metrics`, { method: 'POST', body: 'x' });
  t.is(post.status, 405);
  t.is(post.headers.get('allow'), 'GET, HEAD');
  t.is((await fetch(`${server.url}/metrics?name[]=x`)).status, 200, 'a query string is ignored');
});

test('/healthz is 200 ok when healthy() says so, else 503 with the reason', async (t) => {
  let verdict: HealthVerdict = { ok: true };
  const { server } = await serve(t, { healthy: () => Promise.resolve(verdict) });
  const ok = await fetch(`${server.url}/healthz`);
  t.is(ok.status, 200);
  t.is(await ok.text(), 'ok\n');
  verdict = { ok: false, reason: 'registry upstream down for 42 s' };
  const bad = await fetch(`${server.url}/healthz`);
  t.is(bad.status, 503);
  t.is(await bad.text(), 'registry upstream down for 42 s\n');
});

test('/healthz: a throwing health check is a 503 naming the error; no check means healthy', async (t) => {
  const { server } = await serve(t, {
    healthy: () => {
      throw new Error('state store closed');
    },
  });
  const res = await fetch(`${server.url}/healthz`);
  t.is(res.status, 503);
  t.regex(await res.text(), /health check failed: state store closed/);
  const plain = (await serve(t)).server;
  t.is((await fetch(`${plain.url}/healthz`)).status, 200);
});

test('a port in use is an AgentError naming the setting to change', async (t) => {
  const blocker: Server = createServer();
  await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
  t.teardown(() => new Promise<void>((resolve) => blocker.close(() => resolve())));
  const port = (blocker.address() as { port: number }).port;
  const lines: string[] = [];
  const e = await t.throwsAsync(
    startMetricsServer({
      listen: `:${port}`, // a bare port is loopback, where the blocker listens
      metrics: new AgentMetrics({ log: silentLogger(), processMetrics: false }),
      log: createLogger({ destination: { write: (s: string) => void lines.push(s) } }),
    }),
  );
  t.true(AgentError.is(e, 'UNAVAILABLE'));
  t.regex(e.message, new RegExp(`cannot serve /metrics on 127\\.0\\.0\\.1:${port}: the address is in use`));
  t.regex(e.message, /agent\.listen\.metrics/);
  t.regex(e.message, /--listen-metrics/);
});

test('listen addresses: a bare port is loopback; IPv6 in brackets; nonsense is CONFIG_INVALID', async (t) => {
  t.deepEqual(parseListenAddress(':9464'), { host: '127.0.0.1', port: 9464 });
  t.deepEqual(parseListenAddress('0.0.0.0:9464'), { host: '0.0.0.0', port: 9464 });
  t.deepEqual(parseListenAddress('[::1]:9464'), { host: '::1', port: 9464 });
  t.deepEqual(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 });
  for (const bad of ['9464', 'host:', 'host:70000', '[nope]:1', '::1:9464', 'http://x:1']) {
    const e = t.throws(() => parseListenAddress(bad), undefined, bad);
    t.true(AgentError.is(e, 'CONFIG_INVALID'), bad);
  }
  // IPv6 loopback, where this host has it.
  const log = silentLogger();
  const v6 = await startMetricsServer({
    listen: '[::1]:0',
    metrics: new AgentMetrics({ log, processMetrics: false }),
    log,
  }).catch(() => undefined);
  if (v6 !== undefined) {
    t.teardown(() => v6.close());
    t.regex(v6.url, /^http:\/\/\[::1\]:\d+$/);
    t.is((await fetch(`${v6.url}/healthz`)).status, 200);
  }
});

test('close() stops listening even with a keep-alive client connected', async (t) => {
  const log = silentLogger();
  const server = await startMetricsServer({
    listen: '127.0.0.1:0',
    metrics: new AgentMetrics({ log, processMetrics: false }),
    log,
  });
  t.is((await fetch(`${server.url}/healthz`, { keepalive: true })).status, 200);
  await server.close();
  await t.throwsAsync(fetch(`${server.url}/healthz`));
});
