import { create } from '@bufbuild/protobuf';
import test from 'ava';
import { ConnectionSchema } from '../../../src/api/index.js';
import { beginServer } from '../../../src/chain/begin/server.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import { MetadataKey, metadataOf } from '../../../src/chain/metadata/metadata.js';
import { metadataClient, metadataServer } from '../../../src/chain/metadata/server.js';
import { updatePathServer } from '../../../src/chain/updatepath/server.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { hook, requestWith, testContext } from '../../helpers/chain.js';

// How an element keeps per-connection state: a private key and typed helpers (its metadata.ts).
const counterKey = new MetadataKey<{ requests: number }>('test/counter');

const req = (id = 'a') =>
  requestWith(
    [
      { name: 'nsc', id },
      { name: 'nsmgr', id: `m-${id}` },
    ],
    0,
    id,
  );
const closeOf = (id = 'a') => create(ConnectionSchema, { id, path: req(id).connection!.path });

function setup(failWhen: (n: number) => boolean = () => false) {
  const seen: number[] = [];
  let calls = 0;
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    metadataServer(),
    hook('count', (op, ctx) => {
      const md = metadataOf(ctx, 'server');
      const c = md.loadOrStore(counterKey, () => ({ requests: 0 }));
      if (op === 'request') {
        c.requests++;
        seen.push(c.requests);
        if (failWhen(++calls)) throw new AgentError('UNAVAILABLE', 'down');
      }
    }),
  ]);
  return { chain, seen };
}

test('metadata lives across refreshes of one connection and is separate per connection', async (t) => {
  const { chain, seen } = setup();
  const ctx = testContext();
  await chain.request(ctx, req('a'));
  await chain.request(ctx, req('a'));
  await chain.request(ctx, req('b'));
  await chain.request(ctx, req('a'));
  t.deepEqual(seen, [1, 2, 1, 3]);
});

test('metadata is dropped on close', async (t) => {
  const { chain, seen } = setup();
  const ctx = testContext();
  await chain.request(ctx, req('a'));
  await chain.close(ctx, closeOf('a'));
  await chain.request(ctx, req('a'));
  t.deepEqual(seen, [1, 1]);
});

test('metadata of a failed first request is dropped; a failed refresh keeps it', async (t) => {
  const { chain, seen } = setup((n) => n === 1 || n === 3);
  const ctx = testContext();
  await t.throwsAsync(chain.request(ctx, req('a')));
  await chain.request(ctx, req('a')); // fresh: 1
  await t.throwsAsync(chain.request(ctx, req('a'))); // refresh fails: 2, kept
  await chain.request(ctx, req('a')); // 3
  t.deepEqual(seen, [1, 1, 2, 3]);
});

test('server and client metadata are separate maps', async (t) => {
  const clientKey = new MetadataKey<string>('test/side');
  const chain = buildChain('s', [
    updatePathServer('nsmgr'),
    beginServer(),
    metadataServer(),
    hook('server-side', (_op, ctx) => metadataOf(ctx, 'server').store(clientKey, 'server')),
  ]);
  const clientChain = buildChain('c', [
    updatePathServer('nsmgr'),
    beginServer(),
    metadataClient(),
    hook('client-side', (_op, ctx) => {
      t.is(metadataOf(ctx, 'client').load(clientKey), undefined);
      t.throws(() => metadataOf(ctx, 'server'), { message: /no server metadata in context/ });
    }),
  ]);
  await chain.request(testContext(), req('a'));
  await clientChain.request(testContext(), req('a'));
});

test('an element that needs metadata in a chain without it fails with CHAIN_INVALID and a hint', async (t) => {
  const chain = buildChain('s', [hook('needs', (_op, ctx) => void metadataOf(ctx, 'server'))]);
  const err = await t.throwsAsync(chain.request(testContext(), req('a')), { instanceOf: AgentError });
  t.is(err.code, 'CHAIN_INVALID');
  t.regex(err.message, /put the metadata element in the server chain/);
});
