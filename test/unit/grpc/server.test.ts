import { getEventListeners, once } from 'node:events';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import test from 'ava';
import { ChannelCredentials, Client, Metadata, status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { dial, implement, insecure } from '../../../src/api/grpc/index.js';
import type { CallContext } from '../../../src/api/grpc/index.js';
import { ConnectionEventType, MonitorConnection } from '../../../src/api/gen/connection_pb.js';
import { IPAM, Type } from '../../../src/api/gen/ipam_pb.js';
import { NetworkService } from '../../../src/api/gen/networkservice_pb.js';
import { AgentError } from '../../../src/errors/index.js';
import { capturingLogger, connect, echoNetworkService, loopback, serve, tempDir } from './fixtures.js';

test('NetworkService.Request over a unix socket', async (t) => {
  const dir = await tempDir(t);
  const url = `unix://${join(dir, 'nsm.sock')}`;
  const server = await serve(t, {
    listen: [{ url, credentials: insecure() }],
    services: [echoNetworkService()],
  });
  t.is(server.address, url);
  t.is(server.port, undefined);

  const ns = connect(t, url, { credentials: insecure() }).client(NetworkService);
  const conn = await ns.request({ connection: { id: 'c-unix', networkService: 'db-net' } });
  t.is(conn.id, 'c-unix');
  t.is(conn.networkService, 'db-net');
  t.is(conn.labels.servedBy, 'local');
  t.deepEqual(await ns.close(conn), { $typeName: 'google.protobuf.Empty' });
});

test('NetworkService.Request over loopback tcp on an ephemeral port', async (t) => {
  const server = await serve(t, { listen: [loopback], services: [echoNetworkService()] });
  t.true(server.port !== undefined && server.port > 0);
  t.is(server.address, `tcp://127.0.0.1:${server.port}`);

  const ns = connect(t, server.address).client(NetworkService);
  const conn = await ns.request({ connection: { networkService: 'db-net' } });
  t.is(conn.id, 'conn-1');
});

test('NetworkService.Request over IPv6 loopback', async (t) => {
  const server = await serve(t, {
    listen: [{ url: 'tcp://[::1]:0', credentials: insecure({ allowLoopbackTcp: true }) }],
    services: [echoNetworkService()],
  });
  t.is(server.address, `tcp://[::1]:${server.port}`);
  const conn = await connect(t, server.address)
    .client(NetworkService)
    .request({ connection: { id: 'v6' } });
  t.is(conn.id, 'v6');
});

test('plain text is refused on routable tcp and, unless asked for, on loopback', async (t) => {
  const services = [echoNetworkService()];
  await t.throwsAsync(serve(t, { listen: [{ url: 'tcp://:0', credentials: insecure() }], services }), {
    message: /without TLS: it is reachable from other hosts/,
  });
  await t.throwsAsync(
    serve(t, { listen: [{ url: 'tcp://127.0.0.1:0', credentials: insecure() }], services }),
    {
      message: /allowLoopbackTcp/,
    },
  );
  t.throws(() => dial('tcp://10.1.2.3:5001', { credentials: insecure({ allowLoopbackTcp: true }) }), {
    message: /without TLS: it is another host/,
  });
});

test('MonitorConnections streams several events, and cancelling reaches the handler', async (t) => {
  let handlerSignal: AbortSignal | undefined;
  let handlerDone: (() => void) | undefined;
  const handlerEnded = new Promise<void>((resolve) => (handlerDone = resolve));
  const monitor = implement(MonitorConnection, {
    async monitorConnections(selector, stream, ctx) {
      handlerSignal = ctx.signal;
      for (let i = 0; i < 3; i++) {
        await stream.send({
          type: i === 0 ? ConnectionEventType.INITIAL_STATE_TRANSFER : ConnectionEventType.UPDATE,
          connections: { [`c${i}`]: { id: `c${i}`, networkService: selector.networkServices[0] ?? '' } },
        });
      }
      // A monitor stays open until the client goes away.
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      handlerDone?.();
    },
  });
  const server = await serve(t, { listen: [loopback], services: [monitor] });
  const client = connect(t, server.address).client(MonitorConnection);

  const abort = new AbortController();
  const stream = client.monitorConnections({ networkServices: ['db-net'] }, { signal: abort.signal });
  const seen: string[] = [];
  const failure = await t.throwsAsync(
    (async () => {
      for await (const event of stream) {
        seen.push(...Object.keys(event.connections));
        t.is(Object.values(event.connections)[0]?.networkService, 'db-net');
        if (seen.length === 3) abort.abort();
      }
    })(),
    { instanceOf: AgentError },
  );
  t.is(failure.code, 'CANCELLED');
  t.deepEqual(seen, ['c0', 'c1', 'c2']);
  await handlerEnded;
  t.true(handlerSignal?.aborted);
});

test('breaking out of a stream loop cancels the call on the server', async (t) => {
  let serverSawCancel: (() => void) | undefined;
  const cancelled = new Promise<void>((resolve) => (serverSawCancel = resolve));
  const monitor = implement(MonitorConnection, {
    async monitorConnections(_selector, stream, ctx) {
      ctx.signal.addEventListener('abort', () => serverSawCancel?.(), { once: true });
      for (let i = 0; !ctx.signal.aborted; i++) {
        await stream.send({ type: ConnectionEventType.UPDATE, connections: { [`c${i}`]: { id: `c${i}` } } });
        await sleep(5);
      }
    },
  });
  const server = await serve(t, { listen: [loopback], services: [monitor] });
  let received = 0;
  for await (const _event of connect(t, server.address).client(MonitorConnection).monitorConnections({})) {
    received++;
    break;
  }
  await cancelled;
  t.is(received, 1);
});

test('streams that end let go of the caller’s long-lived signal (no listener per call piles up)', async (t) => {
  const monitor = implement(MonitorConnection, {
    async monitorConnections(_selector, stream) {
      await stream.send({ type: ConnectionEventType.INITIAL_STATE_TRANSFER, connections: {} });
    },
  });
  const server = await serve(t, { listen: [loopback], services: [monitor] });
  const client = connect(t, server.address).client(MonitorConnection);
  const lifetime = new AbortController();
  for (let i = 0; i < 30; i++) {
    let events = 0;
    for await (const _event of client.monitorConnections({}, { signal: lifetime.signal })) events++;
    t.is(events, 1);
  }
  // 'status' may follow the last message by a tick.
  for (let i = 0; i < 50 && getEventListeners(lifetime.signal, 'abort').length > 0; i++) await sleep(10);
  t.is(getEventListeners(lifetime.signal, 'abort').length, 0);
});

test('a unary call to a handler that never answers fails with DEADLINE_EXCEEDED (default deadline)', async (t) => {
  let seen: CallContext | undefined;
  const hanging = implement(NetworkService, {
    request: (_req, ctx) => {
      seen = ctx;
      return new Promise(() => undefined);
    },
    close: () => ({}),
  });
  const server = await serve(t, { listen: [loopback], services: [hanging] });
  const conn = connect(t, server.address, {
    credentials: insecure({ allowLoopbackTcp: true }),
    defaultTimeoutMs: 300,
  });
  const ns = conn.client(NetworkService);

  const started = Date.now();
  const e = await t.throwsAsync(ns.request({}), { instanceOf: AgentError });
  const elapsed = Date.now() - started;
  t.is(e.code, 'DEADLINE_EXCEEDED');
  t.is(e.details.grpcStatus, 'DEADLINE_EXCEEDED');
  t.is(e.details.method, '/networkservice.NetworkService/Request');
  // The lower bound shows the default deadline was used; the upper one only that the call did not
  // hang (loose: CI machines are shared and slow at times).
  t.true(elapsed >= 250 && elapsed < 10_000, `took ${elapsed} ms`);

  // An explicit per-call timeout wins over the default.
  const e2 = await t.throwsAsync(ns.request({}, { timeoutMs: 50 }), { instanceOf: AgentError });
  t.is(e2.code, 'DEADLINE_EXCEEDED');

  // The handler learns that its call is over (the server runs the deadline too).
  const signal = seen?.signal;
  if (signal && !signal.aborted) {
    await Promise.race([once(signal, 'abort'), sleep(10_000)]);
  }
  t.true(signal?.aborted);
});

test('AgentError from a handler becomes its status and message; anything else becomes INTERNAL and is logged', async (t) => {
  const { log, lines } = capturingLogger();
  let calls = 0;
  const failing = implement(NetworkService, {
    request(req) {
      calls++;
      if (req.connection?.id === 'deny') {
        throw new AgentError('PERMISSION_DENIED', 'peer may not use db-net', { hint: 'ask the owner' });
      }
      if (req.connection?.id === 'config')
        throw new AgentError('CONFIG_INVALID', 'mechanism KERNEL needs a netns');
      if (req.connection?.id === 'exec')
        throw new AgentError('EXEC_FAILED', 'ip link add secret-name failed');
      if (req.connection?.id === 'bug') throw new TypeError('cannot read properties of undefined');
      return { id: 'ok' };
    },
    close: () => Promise.reject(new Error('plain rejection')),
  });
  const server = await serve(t, { listen: [loopback], services: [failing], log });
  const ns = connect(t, server.address).client(NetworkService);

  const denied = await t.throwsAsync(ns.request({ connection: { id: 'deny' } }), { instanceOf: AgentError });
  t.is(denied.code, 'PERMISSION_DENIED');
  t.is(denied.message, 'peer may not use db-net; ask the owner');

  const config = await t.throwsAsync(ns.request({ connection: { id: 'config' } }), {
    instanceOf: AgentError,
  });
  t.is(config.code, 'INVALID_ARGUMENT');
  t.is(config.message, 'mechanism KERNEL needs a netns');

  for (const id of ['exec', 'bug']) {
    const e = await t.throwsAsync(ns.request({ connection: { id } }), { instanceOf: AgentError });
    t.is(e.code, 'INTERNAL');
    t.is(e.details.grpcStatus, 'INTERNAL');
    t.notRegex(e.message, /secret-name|undefined/, 'internal details stay on the server');
  }
  const closed = await t.throwsAsync(ns.close({}), { instanceOf: AgentError });
  t.is(closed.code, 'INTERNAL');

  // The server is still serving.
  t.is((await ns.request({ connection: { id: 'next' } })).id, 'ok');
  t.is(calls, 5);

  const errors = lines().filter((l) => l.level === 'error');
  t.true(errors.some((l) => JSON.stringify(l).includes('cannot read properties of undefined')));
  t.true(errors.some((l) => JSON.stringify(l).includes('secret-name')));
});

test('malformed protobuf bytes get an error status and the server keeps serving', async (t) => {
  const server = await serve(t, { listen: [loopback], services: [echoNetworkService()] });
  const raw = new Client(`127.0.0.1:${server.port}`, ChannelCredentials.createInsecure());
  t.teardown(() => raw.close());
  const identity = (b: Buffer): Buffer => b;
  // Field 1, length-delimited, claims 5 bytes but carries 1: a truncated message.
  const truncated = Buffer.from([0x0a, 0x05, 0x01]);
  const err = await new Promise<ServiceError | null>((resolve) => {
    raw.makeUnaryRequest(
      '/networkservice.NetworkService/Request',
      identity,
      identity,
      truncated,
      new Metadata(),
      { deadline: Date.now() + 5000 },
      (e) => resolve(e),
    );
  });
  // grpc-js answers undecodable requests itself, before any handler runs.
  t.is(err?.code, GrpcStatus.INTERNAL);

  const ns = connect(t, server.address).client(NetworkService);
  t.is((await ns.request({ connection: { id: 'after' } })).id, 'after');
});

test('an AbortSignal cancels a unary call in flight and one already aborted never starts', async (t) => {
  const hanging = implement(NetworkService, {
    request: () => new Promise(() => undefined),
    close: () => ({}),
  });
  const server = await serve(t, { listen: [loopback], services: [hanging] });
  const ns = connect(t, server.address).client(NetworkService);

  const abort = new AbortController();
  const pending = ns.request({}, { signal: abort.signal });
  setTimeout(() => abort.abort(), 50);
  const e = await t.throwsAsync(pending, { instanceOf: AgentError });
  t.is(e.code, 'CANCELLED');

  const e2 = await t.throwsAsync(ns.request({}, { signal: AbortSignal.abort() }), { instanceOf: AgentError });
  t.is(e2.code, 'CANCELLED');
});

test('close() waits for calls in flight, then cancels what is left after the grace period', async (t) => {
  let aborted = false;
  let inHandler: (() => void) | undefined;
  const handlerStarted = new Promise<void>((resolve) => (inHandler = resolve));
  const slow = implement(NetworkService, {
    request: async (_req, ctx) => {
      inHandler?.();
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      aborted = true;
      return {};
    },
    close: () => ({}),
  });
  const server = await serve(t, { listen: [loopback], services: [slow] });
  const ns = connect(t, server.address).client(NetworkService);
  const pending = ns.request({}, { timeoutMs: 10_000 });
  pending.catch(() => undefined);
  await handlerStarted;

  const started = Date.now();
  await server.close({ graceMs: 200 });
  const elapsed = Date.now() - started;
  t.true(elapsed >= 150 && elapsed < 3000, `close took ${elapsed} ms`);
  const e = await t.throwsAsync(pending, { instanceOf: AgentError });
  t.true(['CANCELLED', 'UNAVAILABLE'].includes(e.code), e.code);
  t.true(aborted);
  await server.close(); // idempotent
});

test('a bidi stream (IPAM-style) echoes requests with the typed client', async (t) => {
  const ipam = implement(IPAM, {
    async managePrefixes(requests, stream) {
      for await (const req of requests)
        await stream.send({ prefix: `${req.type}:${req.prefix}`, excludePrefixes: ['ok'] });
    },
  });
  const server = await serve(t, { listen: [loopback], services: [ipam] });
  const call = connect(t, server.address).client(IPAM).managePrefixes();
  call.write({ type: Type.ALLOCATE, prefix: '10.0.0.0/24' });
  call.write({ type: Type.DELETE, prefix: '10.0.1.0/24' });
  call.end();
  const answers: string[] = [];
  for await (const res of call) answers.push(`${res.prefix} ${res.excludePrefixes.join()}`);
  t.deepEqual(answers, [`${Type.ALLOCATE}:10.0.0.0/24 ok`, `${Type.DELETE}:10.0.1.0/24 ok`]);
});

test('a stream that fails before the caller starts reading surfaces the error on iteration, without a crash', async (t) => {
  const monitor = implement(MonitorConnection, {
    monitorConnections: () => Promise.reject(new AgentError('NOT_FOUND', 'no such network service')),
  });
  const server = await serve(t, { listen: [loopback], services: [monitor] });
  const stream = connect(t, server.address).client(MonitorConnection).monitorConnections({});
  await sleep(200); // the status arrives while nobody listens
  const e = await t.throwsAsync(
    (async () => {
      for await (const _event of stream) t.fail('no event expected');
    })(),
    { instanceOf: AgentError },
  );
  t.is(e.code, 'NOT_FOUND');
  t.is(e.message, 'no such network service');
});

test('the server enforces its receive limit (tuning) with RESOURCE_EXHAUSTED and keeps serving', async (t) => {
  const server = await serve(t, {
    listen: [loopback],
    services: [echoNetworkService()],
    tuning: { maxReceiveMessageBytes: 1024 },
  });
  const ns = connect(t, server.address).client(NetworkService);
  const e = await t.throwsAsync(ns.request({ connection: { labels: { big: 'x'.repeat(4096) } } }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'RESOURCE_EXHAUSTED');
  t.is((await ns.request({ connection: { id: 'small' } })).id, 'small');
});

test('waitForReady resolves for a live server and fails by its deadline when nothing listens', async (t) => {
  const server = await serve(t, { listen: [loopback], services: [echoNetworkService()] });
  await connect(t, server.address).waitForReady(new Date(Date.now() + 5000));

  const dir = await tempDir(t);
  const nobody = connect(t, `unix://${join(dir, 'nobody.sock')}`, { credentials: insecure() });
  const started = Date.now();
  const e = await t.throwsAsync(nobody.waitForReady(new Date(Date.now() + 300)), { instanceOf: AgentError });
  t.is(e.code, 'DEADLINE_EXCEEDED');
  t.regex(e.message, /could not connect to unix:\/\/.*nobody\.sock/);
  t.true(Date.now() - started < 3000);

  nobody.close();
  const closed = await t.throwsAsync(nobody.waitForReady(new Date(Date.now() + 300)), {
    instanceOf: AgentError,
  });
  t.is(closed.code, 'UNAVAILABLE');
});
