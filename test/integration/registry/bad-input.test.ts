// Bad input over real gRPC: each gets a precise status and message, and the server keeps serving.
import test from 'ava';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { NetworkServiceEndpointSchema, create, toBinary, toTimestamp } from '../../../src/api/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { RegistryClient, all, capturingLogger, mesh, startRegistry } from './fixtures.js';

async function setup(
  t: Parameters<typeof startRegistry>[0],
): Promise<{ a: RegistryClient; clock: FakeClock; logText: () => string }> {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { log, text } = capturingLogger();
  const { url } = await startRegistry(t, { clock, log });
  return { a: new RegistryClient(t, url, m.a, m.ca, clock), clock, logText: text };
}

async function status(p: Promise<unknown>): Promise<ServiceError> {
  try {
    await p;
  } catch (e: unknown) {
    return e as ServiceError;
  }
  throw new Error('the call succeeded');
}

const OK = { name: 'fine', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.1:5001' };
const NSE_REGISTER = '/registry.NetworkServiceEndpointRegistry/Register';

test('malformed NSEs: empty name, bad URLs, too many labels, bad service names, past expiration', async (t) => {
  const { a, clock } = await setup(t);
  const many: Record<string, string> = {};
  for (let i = 0; i < 300; i++) many[`k${i}`] = 'v';
  const cases: [Parameters<typeof a.registerNse>[0], RegExp][] = [
    [{ ...OK, name: '' }, /network service endpoint name is empty; set NetworkServiceEndpoint.name/],
    [{ ...OK, name: 'x'.repeat(300) }, /name is longer than 253 bytes/],
    [{ ...OK, name: 'bad\nname' }, /contains control characters/],
    [{ ...OK, url: '' }, /url is empty; use tcp:\/\/<host>:<port>/],
    [{ ...OK, url: 'http://10.0.0.1:80' }, /url "http:\/\/10.0.0.1:80" is not usable: .*unknown scheme/],
    [{ ...OK, url: 'tcp://10.0.0.1' }, /is not usable: .*expected tcp:\/\/host:port/],
    [{ ...OK, url: 'tcp://:5001' }, /has no host or port 0: peers cannot dial it/],
    [{ ...OK, url: 'unix://relative.sock' }, /needs an absolute path/],
    [{ ...OK, url: 'inode://a/b' }, /is not inode:\/\/<dev>\/<ino>/],
    [{ ...OK, networkServiceNames: [''] }, /network service name is empty/],
    [{ ...OK, networkServiceLabels: { 'db-net': { labels: many } } }, /hold more than 256 labels in total/],
    [{ ...OK, networkServiceLabels: { 'db-net': { labels: { '': 'x' } } } }, /label with an empty key/],
    [{ ...OK, expirationTime: toTimestamp(clock.now() - 1_000) }, /expiration_time .* is not in the future/],
  ];
  for (const [nse, why] of cases) {
    const e = await status(a.registerNse(nse));
    t.is(e.code, GrpcStatus.INVALID_ARGUMENT, why.source);
    t.regex(e.details, why);
  }
  await a.registerNse(OK);
  t.is((await all(a.nse.find({}))).length, 1, 'still serving, and none of the bad ones was stored');
});

test('malformed NSs: empty name, unknown payload, too many matches', async (t) => {
  const { a } = await setup(t);
  const matches = Array.from({ length: 70 }, () => ({ sourceSelector: { a: 'b' } }));
  for (const [ns, why] of [
    [{ name: '' }, /network service name is empty/],
    [{ name: 'x', payload: 'ATM' }, /payload "ATM" is not one NSM knows; use IP or ETHERNET/],
    [{ name: 'x', matches }, /matches has 70 entries, the limit is 64/],
  ] as const) {
    const e = await status(a.registerNs(ns));
    t.is(e.code, GrpcStatus.INVALID_ARGUMENT);
    t.regex(e.details, why);
  }
});

test('Unregister of an unknown name is NOT_FOUND and says so', async (t) => {
  const { a } = await setup(t);
  const e1 = await status(a.unregisterNse({ name: 'ghost' }));
  t.is(e1.code, GrpcStatus.NOT_FOUND);
  t.regex(e1.details, /no network service endpoint "ghost" is registered; nothing to unregister/);
  const e2 = await status(a.unregisterNs({ name: 'ghost-net' }));
  t.is(e2.code, GrpcStatus.NOT_FOUND);
  const e3 = await status(a.unregisterNse({ name: '' }));
  t.is(e3.code, GrpcStatus.INVALID_ARGUMENT);
});

test('a message over the server’s receive limit is RESOURCE_EXHAUSTED; the server keeps serving', async (t) => {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { url } = await startRegistry(t, { clock, maxReceiveMessageBytes: 64 * 1024 });
  const a = new RegistryClient(t, url, m.a, m.ca, clock);
  const big = create(NetworkServiceEndpointSchema, {
    ...OK,
    networkServiceLabels: { x: { labels: { k: 'v'.repeat(100_000) } } },
  });
  const e = await status(a.callRaw(NSE_REGISTER, toBinary(NetworkServiceEndpointSchema, big)));
  t.is(e.code, GrpcStatus.RESOURCE_EXHAUSTED);
  t.regex(e.details, /larger than max/i);
  await a.registerNse(OK);
  t.pass();
});

test('the default 4 MiB receive limit applies too', async (t) => {
  const { a } = await setup(t);
  const big = create(NetworkServiceEndpointSchema, {
    ...OK,
    url: 'tcp://10.0.0.1:1',
    name: 'n',
    networkServiceLabels: { x: { labels: { k: 'v'.repeat(4_300_000) } } },
  });
  const e = await status(a.callRaw(NSE_REGISTER, toBinary(NetworkServiceEndpointSchema, big)));
  t.is(e.code, GrpcStatus.RESOURCE_EXHAUSTED);
});

test('malformed protobuf is INVALID_ARGUMENT saying it does not decode, for Register and Find; the server keeps serving', async (t) => {
  const { a } = await setup(t);
  // Field 1 (name) as a length-delimited string claiming 100 bytes, with 2 present.
  const truncated = Uint8Array.from([0x0a, 100, 0x41, 0x42]);
  const e = await status(a.callRaw(NSE_REGISTER, truncated));
  t.is(e.code, GrpcStatus.INVALID_ARGUMENT);
  t.regex(e.details, /cannot decode registry.NetworkServiceEndpoint \(4 bytes\)/);
  // A Find whose query does not decode (field 2 claims 5 bytes, 1 present).
  const e2 = await status(
    a.findRaw('/registry.NetworkServiceEndpointRegistry/Find', Uint8Array.from([0x12, 5, 1])),
  );
  t.is(e2.code, GrpcStatus.INVALID_ARGUMENT);
  t.regex(e2.details, /cannot decode registry.NetworkServiceEndpointQuery/);
  await a.registerNse(OK);
  t.is((await all(a.nse.find({}))).length, 1);
});
