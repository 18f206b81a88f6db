import { create } from '@bufbuild/protobuf';
import test from 'ava';
import { ConnectionSchema, MechanismSchema, PathSegmentSchema } from '../../../src/api/index.js';
import { NetworkServiceRequestSchema } from '../../../src/api/index.js';
import { beginServer } from '../../../src/chain/begin/server.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { metadataServer } from '../../../src/chain/metadata/server.js';
import { updatePathServer } from '../../../src/chain/updatepath/server.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import type { Call } from '../../helpers/chain.js';
import { capturingLogger, recorder, requestWith, testContext } from '../../helpers/chain.js';

const el = (name: string, order?: ChainElement['order']): ChainElement => ({
  name,
  ...(order ? { order } : {}),
  request: (ctx, r, next) => next.request(ctx, r),
  close: (ctx, c, next) => next.close(ctx, c),
});

test('elements run in list order before next and in reverse after it', async (t) => {
  const calls: Call[] = [];
  const chain = buildChain('test', [recorder('a', calls), recorder('b', calls), recorder('c', calls)]);
  t.deepEqual(chain.elements, ['a', 'b', 'c']);
  await chain.request(testContext(), requestWith([{ name: 'x', id: '1' }], 0, '1'));
  t.deepEqual(
    calls.map((c) => `${c.element}:${c.phase}`),
    ['a:pre', 'b:pre', 'c:pre', 'c:post', 'b:post', 'a:post'],
  );
});

test('the tail returns the request connection; a request without one is refused', async (t) => {
  const chain = buildChain('test', [el('a')]);
  const req = requestWith([{ name: 'x', id: '1' }], 0, '1');
  const conn = await chain.request(testContext(), req);
  t.true(conn === req.connection, 'the very connection object of the request');
  const err = await t.throwsAsync(chain.request(testContext(), create(NetworkServiceRequestSchema)), {
    instanceOf: AgentError,
  });
  t.is(err.code, 'INVALID_ARGUMENT');
});

test('order: a required element that is missing fails the build and names both', (t) => {
  const err = t.throws(() => buildChain('nsmgr', [el('begin', { requires: ['updatepath'] })]), {
    instanceOf: AgentError,
  });
  t.is(err.code, 'CHAIN_INVALID');
  t.regex(
    err.message,
    /chain "nsmgr".*"begin" requires "updatepath" before it, but the chain has no "updatepath"/,
  );
});

test('order: a required element standing after fails the build', (t) => {
  const err = t.throws(() => buildChain('nsmgr', [beginServer(), updatePathServer('nsmgr')]), {
    instanceOf: AgentError,
  });
  t.regex(err.message, /"begin" requires "updatepath" before it, but "updatepath" stands after it/);
  t.regex(err.message, /order now: begin → updatepath/);
});

test('order: duplicates, first, after and before rules are all reported at once', (t) => {
  const err = t.throws(
    () =>
      buildChain('x', [
        el('a'),
        el('first', { first: true }),
        el('a'),
        el('late', { before: ['a'] }),
        el('early', { after: ['z'] }),
        el('z'),
      ]),
    { instanceOf: AgentError },
  );
  t.regex(err.message, /"a" appears twice/);
  t.regex(err.message, /"first" must be the first element/);
  t.regex(err.message, /"late" must stand before "a"/);
  t.regex(err.message, /"early" must stand after "z"/);
});

test('order: the standard head updatepath → begin → metadata builds', (t) => {
  t.notThrows(() => buildChain('nsmgr', [updatePathServer('nsmgr'), beginServer(), metadataServer()]));
  t.throws(() => buildChain('nsmgr', [updatePathServer('nsmgr'), metadataServer(), beginServer()]), {
    message: /"metadata" requires "begin" before it/,
  });
});

test('an element undoes only its own work when a later element fails', async (t) => {
  const made: string[] = [];
  const maker = (name: string): ChainElement => ({
    name,
    async request(ctx, r, next) {
      made.push(name);
      try {
        return await next.request(ctx, r);
      } catch (e: unknown) {
        made.splice(made.indexOf(name), 1);
        throw e;
      }
    },
    close: (ctx, c, next) => next.close(ctx, c),
  });
  const boom: ChainElement = {
    ...el('boom'),
    request: () => Promise.reject(new AgentError('UNAVAILABLE', 'no route')),
  };
  const chain = buildChain('x', [maker('iface'), maker('route'), boom]);
  await t.throwsAsync(chain.request(testContext(), requestWith([{ name: 'x', id: '1' }], 0, '1')), {
    message: 'no route',
  });
  t.deepEqual(made, []);
});

test('trace: at debug each element logs id, index, duration and outcome, without tokens or parameters', async (t) => {
  const { log, lines } = capturingLogger('debug');
  const secret: ChainElement = {
    ...el('mech'),
    request(ctx, r, next) {
      r.connection!.mechanism = create(MechanismSchema, {
        cls: 'REMOTE',
        type: 'WIREGUARD',
        parameters: { src_public_key: 'PUBKEY-SHOULD-NOT-LEAK' },
      });
      r.connection!.path!.pathSegments[0] = create(PathSegmentSchema, {
        name: 'x',
        id: '1',
        token: 'JWT-SHOULD-NOT-LEAK',
      });
      return next.request(ctx, r);
    },
  };
  const failing: ChainElement = {
    ...el('last'),
    request: () => Promise.reject(new AgentError('NOT_FOUND', 'no nse')),
  };
  const chain = buildChain('nsmgr', [el('first'), secret, failing]);
  await t.throwsAsync(chain.request(testContext({ log }), requestWith([{ name: 'x', id: '1' }], 0, '1')));
  const traces = lines.filter((l) => l.chain === 'nsmgr');
  t.deepEqual(
    traces.map((l) => `${String(l.element)}:${String(l.msg)}`),
    ['last:nsmgr/last request failed', 'mech:nsmgr/mech request failed', 'first:nsmgr/first request failed'],
  );
  t.like(traces[0], {
    err: { code: 'NOT_FOUND', message: 'no nse' },
    in: { connId: '1', index: 0, mechanism: 'REMOTE/WIREGUARD' },
  });
  t.is(typeof traces[0]?.ms, 'number');
  const all = JSON.stringify(lines);
  t.false(all.includes('SHOULD-NOT-LEAK'));
});

test('trace: nothing is logged at info level', async (t) => {
  const { log, lines } = capturingLogger('info');
  const chain = buildChain('nsmgr', [el('a'), el('b')]);
  await chain.request(testContext({ log }), requestWith([{ name: 'x', id: '1' }], 0, '1'));
  await chain.close(testContext({ log }), create(ConnectionSchema, { id: '1' }));
  t.is(lines.length, 0);
});
