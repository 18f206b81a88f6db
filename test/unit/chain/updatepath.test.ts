import { create } from '@bufbuild/protobuf';
import test from 'ava';
import { ConnectionSchema } from '../../../src/api/index.js';
import { NetworkServiceRequestSchema } from '../../../src/api/index.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { updatePath } from '../../../src/chain/updatepath/common.js';
import { updatePathClient } from '../../../src/chain/updatepath/client.js';
import { updatePathServer } from '../../../src/chain/updatepath/server.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import type { Call } from '../../helpers/chain.js';
import { recorder, requestWith, segments, testContext } from '../../helpers/chain.js';

let n = 0;
const newId = (): string => `new-${++n}`;

test('rule 0: empty path gets our segment at index 0, with a new id when the connection has none', (t) => {
  const conn = create(ConnectionSchema, { networkService: 'web' });
  const index = updatePath(conn, 'nsc', () => 'uuid-1');
  t.is(index, 0);
  t.is(conn.id, 'uuid-1');
  t.is(conn.path?.index, 0);
  t.deepEqual(segments(conn), [{ name: 'nsc', id: 'uuid-1' }]);
});

test('rule 0: empty path keeps the id the connection already has', (t) => {
  const conn = create(ConnectionSchema, { id: 'mine' });
  updatePath(conn, 'nsc', newId);
  t.deepEqual(segments(conn), [{ name: 'nsc', id: 'mine' }]);
  t.is(conn.id, 'mine');
});

test('rule 1: refresh by the same name takes the id of our segment and keeps the index', (t) => {
  const req = requestWith(
    [
      { name: 'nsc', id: 'a' },
      { name: 'nsmgr', id: 'b' },
    ],
    1,
    'something-else',
  );
  const conn = req.connection!;
  const index = updatePath(conn, 'nsmgr', newId);
  t.is(index, 1, 'own index is returned when the current segment is ours');
  t.is(conn.id, 'b');
  t.is(conn.path?.index, 1);
  t.deepEqual(segments(conn), [
    { name: 'nsc', id: 'a' },
    { name: 'nsmgr', id: 'b' },
  ]);
});

test('rule 2.3: a refresh from the caller finds our existing next segment and keeps its id', (t) => {
  const conn = requestWith(
    [
      { name: 'nsc', id: 'a' },
      { name: 'nsmgr', id: 'b' },
    ],
    0,
    'a',
  ).connection!;
  const index = updatePath(conn, 'nsmgr', newId);
  t.is(index, 0, 'the caller index is returned for restoring');
  t.is(conn.path?.index, 1);
  t.is(conn.id, 'b');
});

test('rule 2.0: a connection id that is not the current segment id is rejected', (t) => {
  const conn = requestWith([{ name: 'nsc', id: 'a' }], 0, 'zzz').connection!;
  const err = t.throws(() => updatePath(conn, 'nsmgr', newId), { instanceOf: AgentError });
  t.is(err.code, 'INVALID_ARGUMENT');
  t.regex(err.message, /connection\.id "zzz".*"a"/);
  t.deepEqual(segments(conn), [{ name: 'nsc', id: 'a' }], 'the path is left as it was');
  t.is(conn.path?.index, 0);
});

test('rule 2.0: an index past the end of the path is rejected', (t) => {
  const conn = requestWith([{ name: 'nsc', id: 'a' }], 3, 'a').connection!;
  const err = t.throws(() => updatePath(conn, 'nsmgr', newId), { instanceOf: AgentError });
  t.is(err.code, 'INVALID_ARGUMENT');
  t.regex(err.message, /index 3 is past the end of a path of 1 segments/);
});

test('rule 2.1: a next segment with another name is renamed to us and gets a new id', (t) => {
  const conn = requestWith(
    [
      { name: 'nsc', id: 'a' },
      { name: 'old-nsmgr', id: 'x' },
      { name: 'fwd', id: 'y' },
    ],
    0,
    'a',
  ).connection!;
  updatePath(conn, 'nsmgr', () => 'fresh');
  t.deepEqual(segments(conn), [
    { name: 'nsc', id: 'a' },
    { name: 'nsmgr', id: 'fresh' },
    { name: 'fwd', id: 'y' },
  ]);
  t.is(conn.id, 'fresh');
  t.is(conn.path?.index, 1);
});

test('rule 2.2: no next segment: one is appended with a new id', (t) => {
  const conn = requestWith([{ name: 'nsc', id: 'a' }], 0, 'a').connection!;
  const index = updatePath(conn, 'nsmgr', () => 'fresh');
  t.is(index, 0);
  t.deepEqual(segments(conn), [
    { name: 'nsc', id: 'a' },
    { name: 'nsmgr', id: 'fresh' },
  ]);
  t.is(conn.id, 'fresh');
});

test('server: the next element sees our segment; the caller gets its own id and index back', async (t) => {
  const calls: Call[] = [];
  const chain = buildChain('nsmgr', [updatePathServer('nsmgr'), recorder('inner', calls)]);
  const conn = await chain.request(testContext(), requestWith([{ name: 'nsc', id: 'a' }], 0, 'a'));
  t.like(calls[0], { element: 'inner', phase: 'pre', connId: 'id-1', index: 1 });
  t.is(conn.id, 'a', 'index restored on return: id of the caller segment');
  t.is(conn.path?.index, 0);
  t.deepEqual(segments(conn), [
    { name: 'nsc', id: 'a' },
    { name: 'nsmgr', id: 'id-1' },
  ]);
});

test('server: a failing request leaves nothing to restore and rethrows', async (t) => {
  const failing: ChainElement = {
    name: 'failing',
    request: () => Promise.reject(new AgentError('UNAVAILABLE', 'endpoint down')),
    close: () => Promise.resolve(),
  };
  const chain = buildChain('nsmgr', [updatePathServer('nsmgr'), failing]);
  await t.throwsAsync(chain.request(testContext(), requestWith([{ name: 'nsc', id: 'a' }], 0, 'a')), {
    message: 'endpoint down',
  });
});

test('close goes through the same path rules', async (t) => {
  const calls: Call[] = [];
  const chain = buildChain('nsmgr', [updatePathServer('nsmgr'), recorder('inner', calls)]);
  const ctx = testContext();
  const conn = await chain.request(ctx, requestWith([{ name: 'nsc', id: 'a' }], 0, 'a'));
  await chain.close(ctx, conn);
  const close = calls.find((c) => c.op === 'close');
  t.like(close, { connId: 'id-1', index: 1 }, 'close reaches the inner element with our id');
});

test('a four-hop path nsc → nsmgr → forwarder → nse is built and the client sees index 0', async (t) => {
  // Each hop is a server chain that calls the next hop through a client-side updatepath, as NSM does.
  const ctx = testContext();
  const nse = buildChain('nse', [updatePathServer('nse')]);
  const toNse = buildChain('fwd-client', [updatePathClient('fwd'), forward(nse)]);
  const fwd = buildChain('fwd', [updatePathServer('fwd'), forward(toNse)]);
  const toFwd = buildChain('nsmgr-client', [updatePathClient('nsmgr'), forward(fwd)]);
  const nsmgr = buildChain('nsmgr', [updatePathServer('nsmgr'), forward(toFwd)]);
  const client = buildChain('nsc', [updatePathClient('nsc'), forward(nsmgr)]);

  const req = create(NetworkServiceRequestSchema, {
    connection: create(ConnectionSchema, { id: 'conn-1', networkService: 'web' }),
  });
  const conn = await client.request(ctx, req);
  t.deepEqual(
    segments(conn).map((s) => s.name),
    ['nsc', 'nsmgr', 'fwd', 'nse'],
  );
  t.is(conn.path?.index, 0);
  t.is(conn.id, 'conn-1');
  const ids = segments(conn).map((s) => s.id);
  t.is(new Set(ids).size, 4, 'each hop has its own id');

  // Refresh with the returned connection: every hop recognises its segment, ids stay.
  const again = await client.request(ctx, create(NetworkServiceRequestSchema, { connection: conn }));
  t.deepEqual(
    segments(again).map((s) => s.id),
    ids,
  );
  t.is(again.path?.index, 0);
});

/** Calls another chain as the next hop (stands in for a gRPC call). */
function forward(target: ReturnType<typeof buildChain>): ChainElement {
  return {
    name: 'connect',
    request: (ctx, request) => target.request(ctx, request),
    close: (ctx, connection) => target.close(ctx, connection),
  };
}
