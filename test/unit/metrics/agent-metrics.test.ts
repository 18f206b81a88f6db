// AgentMetrics renders what the daemon fed it as Prometheus text: events recorded as they happen,
// values read by collect callbacks at scrape time, and process metrics. A collect callback that
// throws, rejects or hangs leaves its samples out but never breaks the scrape.
import test from 'ava';
import { FakeClock } from '../../../src/host/fake/index.js';
import { createLogger } from '../../../src/log/index.js';
import { AgentMetrics } from '../../../src/metrics/index.js';
import type { RegistryProxyCounters } from '../../../src/metrics/index.js';
import type { RegistryProxyMetrics } from '../../../src/registry/proxy/proxy-state.js';

function setup(): { metrics: AgentMetrics; clock: FakeClock; logs: { msg: string; source?: string }[] } {
  const logs: { msg: string; source?: string }[] = [];
  const log = createLogger({
    level: 'debug',
    destination: { write: (s: string) => void logs.push(JSON.parse(s) as { msg: string }) },
  });
  const clock = new FakeClock();
  return { metrics: new AgentMetrics({ log, clock, collectTimeoutMs: 1_000 }), clock, logs };
}

/** The value of the sample `series` (name plus rendered labels) in Prometheus text, if present. */
function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

const proxy: RegistryProxyMetrics = {
  upstreamState: 'up',
  upstreamConnects: 2,
  upstreamLosses: 1,
  localEndpoints: 3,
  localServices: 2,
  pendingUpstream: 0,
  registrations: 17,
  queued: 4,
  refreshes: 40,
  refreshFailures: 5,
  restored: 3,
  localExpired: 1,
  cachedServices: 6,
  cachedEndpoints: 9,
};

test('every family carries the values fed to it', async (t) => {
  const { metrics, clock } = setup();
  metrics.setConnections({ up: 2, healing: 1 });
  metrics.setServed(3);
  metrics.observeSetup(0.2, true);
  metrics.observeSetup(3, false);
  metrics.observeRegistry('register', 0.004);
  metrics.observeRegistry('find', 0.3);
  metrics.heal('lost');
  metrics.heal('lost');
  metrics.heal('healed');
  const now = clock.now();
  metrics.onCollect('wireguard', (sink) => {
    sink.handshake('peerA=', now - 30_000);
    sink.handshake('peerNever=', 0);
  });
  metrics.onCollect('identity', async (sink) => {
    await Promise.resolve();
    sink.svidExpiry(now + 3_600_000);
  });
  // RegistryProxy.metrics() is what the daemon hands over: the declared shape accepts it as is.
  const counters: RegistryProxyCounters = proxy;
  metrics.onCollect('registry', (sink) => {
    sink.registryProxy(counters);
  });

  const text = await metrics.scrape();
  t.is(sample(text, 'nsm_agent_connections{state="up"}'), 2);
  t.is(sample(text, 'nsm_agent_connections{state="healing"}'), 1);
  t.is(sample(text, 'nsm_agent_connections{state="connecting"}'), 0);
  t.is(sample(text, 'nsm_agent_connections{state="failed"}'), 0);
  t.is(sample(text, 'nsm_agent_served_connections'), 3);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_count{result="ok"}'), 1);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_bucket{le="0.25",result="ok"}'), 1);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_bucket{le="0.1",result="ok"}'), 0);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_count{result="error"}'), 1);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_sum{result="error"}'), 3);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_bucket{le="10",result="error"}'), 1);
  t.is(sample(text, 'nsm_agent_connection_setup_seconds_bucket{le="0.005",result="ok"}'), 0);
  t.is(sample(text, 'nsm_agent_registry_roundtrip_seconds_bucket{le="0.005",method="register"}'), 1);
  t.is(sample(text, 'nsm_agent_registry_roundtrip_seconds_count{method="find"}'), 1);
  t.is(sample(text, 'nsm_agent_heals_total{result="lost"}'), 2);
  t.is(sample(text, 'nsm_agent_heals_total{result="healed"}'), 1);
  t.is(sample(text, 'nsm_agent_heals_total{result="failed"}'), 0);
  t.is(sample(text, 'nsm_agent_heals_total{result="dataplane_dead"}'), 0);
  t.is(sample(text, 'nsm_agent_heals_total{result="reselected"}'), 0);
  t.is(sample(text, 'nsm_agent_wireguard_handshake_age_seconds{peer="peerA="}'), 30);
  t.false(text.includes('peerNever='), 'a peer without a handshake has no age');
  t.is(sample(text, 'nsm_agent_svid_expiry_seconds'), 3600);
  t.is(sample(text, 'nsm_agent_registry_upstream_up'), 1);
  t.is(sample(text, 'nsm_agent_registry_upstream_connects_total'), 2);
  t.is(sample(text, 'nsm_agent_registry_upstream_losses_total'), 1);
  t.is(sample(text, 'nsm_agent_registry_registrations_total'), 17);
  t.is(sample(text, 'nsm_agent_registry_queued_total'), 4);
  t.is(sample(text, 'nsm_agent_registry_refreshes_total'), 40);
  t.is(sample(text, 'nsm_agent_registry_refresh_failures_total'), 5);
  t.is(sample(text, 'nsm_agent_registry_restored_total'), 3);
  t.is(sample(text, 'nsm_agent_registry_local_expired_total'), 1);
  t.is(sample(text, 'nsm_agent_registry_local_endpoints'), 3);
  t.is(sample(text, 'nsm_agent_registry_local_services'), 2);
  t.is(sample(text, 'nsm_agent_registry_pending_upstream'), 0);
  t.is(sample(text, 'nsm_agent_registry_cached_services'), 6);
  t.is(sample(text, 'nsm_agent_registry_cached_endpoints'), 9);
  t.regex(text, /^# TYPE nsm_agent_heals_total counter$/m);
  t.regex(text, /^# TYPE nsm_agent_connection_setup_seconds histogram$/m);
  t.regex(text, /^# TYPE nsm_agent_wireguard_handshake_age_seconds gauge$/m);

  // Time moves: ages and expiry are computed at each scrape.
  await clock.advance(10_000);
  const later = await metrics.scrape();
  t.is(sample(later, 'nsm_agent_wireguard_handshake_age_seconds{peer="peerA="}'), 40);
  t.is(sample(later, 'nsm_agent_svid_expiry_seconds'), 3590);
});

test('process metrics: resident memory, CPU seconds, open fds, event-loop lag', async (t) => {
  const { metrics } = setup();
  const text = await metrics.scrape();
  t.true((sample(text, 'process_resident_memory_bytes') ?? 0) > 1_000_000);
  t.true((sample(text, 'process_cpu_seconds_total') ?? -1) > 0);
  t.true((sample(text, 'process_open_fds') ?? 0) > 2);
  t.not(sample(text, 'nodejs_eventloop_lag_seconds'), undefined);
});

test('each AgentMetrics has its own registry: two instances do not collide', async (t) => {
  const a = setup().metrics;
  const b = setup().metrics;
  a.heal('failed');
  t.is(sample(await a.scrape(), 'nsm_agent_heals_total{result="failed"}'), 1);
  t.is(sample(await b.scrape(), 'nsm_agent_heals_total{result="failed"}'), 0);
});

test('a peer that went away and a source that stopped reporting leave no stale samples', async (t) => {
  const { metrics, clock } = setup();
  let peers = ['peerA=', 'peerB='];
  let expiry: number | undefined = clock.now() + 60_000;
  metrics.onCollect('wireguard', (sink) => {
    for (const p of peers) sink.handshake(p, clock.now() - 1_000);
    if (expiry !== undefined) sink.svidExpiry(expiry);
  });
  const first = await metrics.scrape();
  t.is(sample(first, 'nsm_agent_wireguard_handshake_age_seconds{peer="peerB="}'), 1);
  t.is(sample(first, 'nsm_agent_svid_expiry_seconds'), 60);
  peers = ['peerA='];
  expiry = undefined;
  const second = await metrics.scrape();
  t.is(sample(second, 'nsm_agent_wireguard_handshake_age_seconds{peer="peerA="}'), 1);
  t.is(sample(second, 'nsm_agent_wireguard_handshake_age_seconds{peer="peerB="}'), undefined);
  t.is(sample(second, 'nsm_agent_svid_expiry_seconds'), undefined);
  t.regex(second, /^# TYPE nsm_agent_svid_expiry_seconds gauge$/m, 'the family is still declared');
});

test('a throwing or rejecting collect callback leaves its samples out, not the scrape', async (t) => {
  const { metrics, clock, logs } = setup();
  const now = clock.now();
  metrics.onCollect('identity', (sink) => {
    sink.svidExpiry(now + 1_000); // written before the throw: dropped with the rest
    throw new Error('SVID not loaded yet');
  });
  metrics.onCollect('registry', () => Promise.reject(new Error('proxy closed')));
  metrics.onCollect('wireguard', (sink) => {
    sink.handshake('peerA=', now - 2_000);
  });
  metrics.setServed(1);

  const text = await metrics.scrape();
  t.is(sample(text, 'nsm_agent_svid_expiry_seconds'), undefined);
  t.is(sample(text, 'nsm_agent_registry_upstream_up'), undefined);
  t.is(sample(text, 'nsm_agent_wireguard_handshake_age_seconds{peer="peerA="}'), 2);
  t.is(sample(text, 'nsm_agent_served_connections'), 1);
  t.is(sample(text, 'nsm_agent_metrics_collect_errors_total{source="identity"}'), 1);
  t.is(sample(text, 'nsm_agent_metrics_collect_errors_total{source="registry"}'), 1);
  const failures = (): string[] => logs.filter((l) => /collecting/.test(l.msg)).map((l) => l.source ?? '');
  t.deepEqual(failures().sort(), ['identity', 'registry']);

  // Within a minute the same failures are counted but not logged again; after it they are.
  await clock.advance(30_000);
  const again = await metrics.scrape();
  t.is(sample(again, 'nsm_agent_metrics_collect_errors_total{source="identity"}'), 2);
  t.is(failures().length, 2);
  await clock.advance(30_000);
  await metrics.scrape();
  t.is(failures().length, 4);
  const identity = logs.find((l) => l.source === 'identity') as { err?: string; msg: string } | undefined;
  t.is(identity?.err, 'SVID not loaded yet');
  t.regex(identity?.msg ?? '', /left out of the scrape/);
});

test('a hanging collect callback times out; the scrape answers with the rest', async (t) => {
  const { metrics, clock } = setup();
  metrics.onCollect('stuck', () => new Promise<void>(() => undefined));
  metrics.heal('healed');
  const scrape = metrics.scrape();
  await clock.advance(1_000);
  const text = await scrape;
  t.is(sample(text, 'nsm_agent_heals_total{result="healed"}'), 1);
  t.is(sample(text, 'nsm_agent_metrics_collect_errors_total{source="stuck"}'), 1);
});

test('a removed collect callback is no longer run; odd values do not throw', async (t) => {
  const { metrics } = setup();
  let runs = 0;
  const off = metrics.onCollect('once', () => {
    runs++;
  });
  await metrics.scrape();
  off();
  await metrics.scrape();
  t.is(runs, 1);
  metrics.observeSetup(Number.NaN, true);
  metrics.observeSetup(-1, true);
  metrics.setServed(Number.POSITIVE_INFINITY);
  const text = await metrics.scrape();
  t.is(
    sample(text, 'nsm_agent_connection_setup_seconds_count{result="ok"}'),
    1,
    'negative clamps to 0, NaN is dropped',
  );
  t.is(sample(text, 'nsm_agent_served_connections'), 0);
});
