// The registry `path` metadata and path_ids over real gRPC (docs/nsm-api.md §4.9): the header a
// first call and a refresh get back, a relayed registration (as through an nsmgr), and bad paths.
import test from 'ava';
import { status as GrpcStatus } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import { decodeToken, verifyTokenSignature } from '../../../src/api/token/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { AGENT_A, AGENT_B, RegistryClient, SERVER_ID, mesh, startRegistry } from './fixtures.js';

interface PathJson {
  Index: number;
  PathSegments: { token: string }[] | null;
}

async function setup(
  t: Parameters<typeof startRegistry>[0],
): Promise<{ a: RegistryClient; b: RegistryClient }> {
  const m = await mesh();
  const clock = new FakeClock(Date.now());
  const { url } = await startRegistry(t, { clock });
  return { a: new RegistryClient(t, url, m.a, m.ca, clock), b: new RegistryClient(t, url, m.b, m.ca, clock) };
}

const NSE = { name: 'nse-path', networkServiceNames: ['db-net'], url: 'tcp://10.0.0.1:5001' };

test('a first call gets back [caller token, server token] at Index 0, and path_ids [caller, server]', async (t) => {
  const m = await mesh();
  const { a } = await setup(t);
  const { response, path } = await a.registerNse(NSE);
  t.deepEqual(response.pathIds, [AGENT_A, SERVER_ID]);
  const p = JSON.parse(path!) as PathJson;
  t.deepEqual(Object.keys(p), ['Index', 'PathSegments'], 'Go’s field names and order');
  t.is(p.Index, 0);
  t.is(p.PathSegments?.length, 2);
  const [caller, server] = p.PathSegments!;
  t.is(decodeToken(caller!.token).claims.sub, AGENT_A);
  t.deepEqual(decodeToken(caller!.token).claims.aud, [SERVER_ID]);
  t.is(decodeToken(server!.token).claims.sub, SERVER_ID);
  t.deepEqual(
    decodeToken(server!.token).claims.aud,
    [AGENT_A],
    'the server’s token is addressed to its peer',
  );
  t.true(verifyTokenSignature(server!.token, m.server.certPem), 'signed with the server’s SVID key');
});

test('a refresh resends the returned path: same shape, fresh tokens, same path_ids', async (t) => {
  const { a } = await setup(t);
  const first = await a.registerNse(NSE);
  const again = await a.registerNse(first.response, { path: first.path! });
  const p1 = JSON.parse(first.path!) as PathJson;
  const p2 = JSON.parse(again.path!) as PathJson;
  t.is(p2.Index, 0);
  t.is(p2.PathSegments?.length, 2, 'no segment is added on refresh');
  t.notDeepEqual(p2.PathSegments?.[0], p1.PathSegments?.[0], 'the caller segment has the new call token');
  t.deepEqual(again.response.pathIds, [AGENT_A, SERVER_ID]);
  const un = await a.unregisterNse({ name: NSE.name }, { path: again.path! });
  t.is((JSON.parse(un.path!) as PathJson).PathSegments?.length, 2, 'Unregister answers with the path too');
});

test('a relayed registration (NSE → nsmgr → registry) appends the registry: path_ids [nse, nsmgr, server]; the NSE owns the name', async (t) => {
  const { a, b } = await setup(t);
  // b plays an nsmgr relaying a's registration: segment 0 is a's token for b, segment 1 is b's own.
  const aToB = a.signer.mint({ spiffeId: AGENT_B }).token;
  const bOwn = b.signer.mint({ spiffeId: AGENT_A }).token;
  const relayed = JSON.stringify({ Index: 1, PathSegments: [{ token: aToB }, { token: bOwn }] });
  const { response, path } = await b.registerNse({ ...NSE, pathIds: [AGENT_A, AGENT_B] }, { path: relayed });
  t.deepEqual(response.pathIds, [AGENT_A, AGENT_B, SERVER_ID]);
  const p = JSON.parse(path!) as PathJson;
  t.is(p.Index, 1, 'the header points at the relaying hop’s segment');
  t.is(p.PathSegments?.length, 3);
  t.is(decodeToken(p.PathSegments![1]!.token).claims.sub, AGENT_B);
  t.deepEqual(
    decodeToken(p.PathSegments![1]!.token).claims.aud,
    [SERVER_ID],
    'b’s segment now holds its call token',
  );

  // Ownership follows path_ids[0] (the NSE), not the relay.
  await a.registerNse(NSE);
  const e = (await b
    .registerNse({ ...NSE, url: 'tcp://10.9.9.9:1' })
    .catch((x: unknown) => x)) as ServiceError;
  t.is(e.code, GrpcStatus.PERMISSION_DENIED);
  t.regex(e.details, /owned by spiffe:\/\/mesh.test\/agent\/host-a/);
});

test('Go’s case-insensitive field names are accepted', async (t) => {
  const { a } = await setup(t);
  const { path } = await a.registerNse(NSE, { path: '{"index":0,"pathSegments":[]}' });
  t.is((JSON.parse(path!) as PathJson).PathSegments?.length, 2);
});

test('a malformed or inconsistent path is INVALID_ARGUMENT saying what to send', async (t) => {
  const { a } = await setup(t);
  for (const [path, why] of [
    ['{"Index":', /the "path" metadata is malformed: it is not JSON/],
    ['[1,2]', /is not a JSON object/],
    ['{"Index":-1,"PathSegments":null}', /Index must be an unsigned 32-bit integer/],
    ['{"Index":0,"PathSegments":"x"}', /PathSegments must be a list or null/],
    ['{"Index":0,"PathSegments":[{"token":5}]}', /a segment token must be a string/],
    ['{"Index":3,"PathSegments":[{"token":""}]}', /Index\+1 \(4\) exceeds the number of segments \(1\)/],
  ] as const) {
    const e = (await a.registerNse(NSE, { path }).catch((x: unknown) => x)) as ServiceError;
    t.is(e.code, GrpcStatus.INVALID_ARGUMENT, path);
    t.regex(e.details, why);
    t.regex(e.details, /"path" response header/, 'the message says what to send');
  }
});
