import test from 'ava';
import { ServingStatus, implement } from '../../../src/api/grpc/index.js';
import { Health } from '../../../src/api/gen/health_pb.js';
import { MonitorConnection } from '../../../src/api/gen/connection_pb.js';
import { AgentError } from '../../../src/errors/index.js';
import { connect, echoNetworkService, loopback, serve } from './fixtures.js';

function monitorService(): ReturnType<typeof implement> {
  return implement(MonitorConnection, { monitorConnections: () => Promise.resolve() });
}

test('Check: SERVING for the server and each NSM service it serves, NOT_FOUND for others', async (t) => {
  const server = await serve(t, { listen: [loopback], services: [echoNetworkService(), monitorService()] });
  const health = connect(t, server.address).client(Health);

  for (const service of ['', 'networkservice.NetworkService', 'connection.MonitorConnection']) {
    t.is((await health.check({ service })).status, ServingStatus.SERVING, service);
  }
  const e = await t.throwsAsync(health.check({ service: 'registry.NetworkServiceRegistry' }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'NOT_FOUND');

  const list = await health.list({});
  t.deepEqual(Object.fromEntries(Object.entries(list.statuses).map(([k, v]) => [k, v.status])), {
    '': ServingStatus.SERVING,
    'networkservice.NetworkService': ServingStatus.SERVING,
    'connection.MonitorConnection': ServingStatus.SERVING,
  });
});

test('Watch reports changes, SERVICE_UNKNOWN for unknown names, and NOT_SERVING on shutdown', async (t) => {
  const server = await serve(t, { listen: [loopback], services: [echoNetworkService()] });
  const health = connect(t, server.address).client(Health);

  const watched: ServingStatus[] = [];
  const unknown: ServingStatus[] = [];
  const watchNs = (async () => {
    for await (const res of health.watch({ service: 'networkservice.NetworkService' })) {
      watched.push(res.status);
      if (watched.length === 1) server.health.set('networkservice.NetworkService', ServingStatus.NOT_SERVING);
      if (watched.length === 2) server.health.set('networkservice.NetworkService', ServingStatus.SERVING);
      if (watched.length === 3) void server.close({ graceMs: 2000 });
    }
  })();
  const watchUnknown = (async () => {
    for await (const res of health.watch({ service: 'later.Service' })) unknown.push(res.status);
  })();

  await watchNs;
  await watchUnknown;
  t.deepEqual(watched, [
    ServingStatus.SERVING,
    ServingStatus.NOT_SERVING,
    ServingStatus.SERVING,
    ServingStatus.NOT_SERVING,
  ]);
  t.deepEqual(unknown, [ServingStatus.SERVICE_UNKNOWN]);
  t.is(server.health.get(''), ServingStatus.NOT_SERVING);
  // After shutdown nothing flips back to SERVING.
  server.health.set('', ServingStatus.SERVING);
  t.is(server.health.get(''), ServingStatus.NOT_SERVING);
});
