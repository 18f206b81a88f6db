import test from 'ava';
import { NetworkServiceRequestSchema, create } from '../../../src/api/index.js';
import {
  CLIENT_TOKEN_EXPIRES_KEY,
  CLIENT_TOKEN_KEY,
  formatRfc3339Nano,
} from '../../../src/api/token/index.js';
import type { ClientToken } from '../../../src/api/token/index.js';
import { beginServer } from '../../../src/chain/begin/server.js';
import { withIncomingMetadata } from '../../../src/chain/core/call-metadata.js';
import { buildChain } from '../../../src/chain/core/chain.js';
import type { ChainContext } from '../../../src/chain/core/context.js';
import type { ChainElement } from '../../../src/chain/core/element.js';
import { timeoutServer } from '../../../src/chain/timeout/index.js';
import { updateTokenServer } from '../../../src/chain/updatetoken/index.js';
import { updatePathServer } from '../../../src/chain/updatepath/index.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { requestWith, testContext } from '../../helpers/chain.js';
import type { Identity } from './token-fixture.js';
import { MGR_ID, NSC_ID, identities, metadataOf } from './token-fixture.js';

const MIN = 60_000;

function setup(mgr: Identity, clock: FakeClock, eventTimeoutMs: number) {
  const log: string[] = [];
  const endpoint: ChainElement = {
    name: 'endpoint',
    request(_ctx, r) {
      log.push(`request@${clock.now()}`);
      return Promise.resolve(r.connection!);
    },
    close() {
      log.push(`close@${clock.now()}`);
      return Promise.resolve();
    },
  };
  const chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    beginServer({ eventTimeoutMs }),
    updateTokenServer({ signer: mgr.signer(clock) }),
    timeoutServer(),
    endpoint,
  ]);
  const call = (token?: ClientToken) => nscCall(clock, token);
  return { chain, log, call };
}

/** A call from the NSC at `clock`, with `token` as its client-token metadata (none: no token). */
function nscCall(clock: FakeClock, token?: ClientToken): ChainContext {
  return withIncomingMetadata(
    testContext({ clock, peer: { spiffeId: NSC_ID } }),
    metadataOf(
      token
        ? {
            [CLIENT_TOKEN_KEY]: token.token,
            [CLIENT_TOKEN_EXPIRES_KEY]: formatRfc3339Nano(token.expiresAtMs),
          }
        : {},
    ),
  );
}

test('the connection is closed at the caller token expiry minus the request time limit; a refresh moves it', async (t) => {
  const ids = await identities();
  const start = Date.now();
  const clock = new FakeClock(start);
  const nsc = ids.nsc.signer(clock); // 10 min tokens
  const { chain, log, call } = setup(ids.mgr, clock, 1_000);

  const conn = await chain.request(
    call(nsc.mint({ spiffeId: MGR_ID })),
    requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1'),
  );
  await clock.advance(5 * MIN);
  // The refresh: the returned connection with a new token (expires at 15 min).
  await chain.request(
    call(nsc.mint({ spiffeId: MGR_ID })),
    create(NetworkServiceRequestSchema, { connection: conn }),
  );
  await clock.advance(9 * MIN); // 14 min: the first token's close (at 10 min − 1 s) did not fire
  t.deepEqual(log, [`request@${start}`, `request@${start + 5 * MIN}`]);
  await clock.advance(MIN - 1_000 - 1);
  t.is(log.length, 2, 'not yet: 1 ms before 15 min − 1 s');
  await clock.advance(1);
  t.deepEqual(log.at(-1), `close@${start + 15 * MIN - 1_000}`);
  t.is(clock.pending, 0, 'no timer left behind');
});

test('Close cancels the expiry timer', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const { chain, log, call } = setup(ids.mgr, clock, 1_000);
  const conn = await chain.request(
    call(ids.nsc.signer(clock).mint({ spiffeId: MGR_ID })),
    requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1'),
  );
  await chain.close(call(), conn);
  t.is(clock.pending, 0);
  await clock.advance(20 * MIN);
  t.is(log.filter((l) => l.startsWith('close')).length, 1, 'only the Close from outside');
});

test('a Request whose previous segment has no expiry is refused before the endpoint', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const { chain, log, call } = setup(ids.mgr, clock, 1_000);
  const e = await t.throwsAsync(chain.request(call(), requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1')));
  t.true(AgentError.is(e, 'INVALID_ARGUMENT'));
  t.regex(
    e.message,
    /^expiration for the previous path segment cannot be nil; the caller must send nsm-client-token-expires/,
  );
  t.deepEqual(log, []);
});

test('a Close that fails before reaching timeout still cancels its timer: begin forgets the connection', async (t) => {
  const ids = await identities();
  const clock = new FakeClock(Date.now());
  const log: string[] = [];
  const chain = buildChain('nsmgr', [
    updatePathServer('nsmgr'),
    beginServer({ eventTimeoutMs: 1_000 }),
    updateTokenServer({ signer: ids.mgr.signer(clock) }),
    {
      name: 'refuses-close',
      request: (ctx, request, next) => next.request(ctx, request),
      close: () => Promise.reject(new AgentError('UNAVAILABLE', 'cannot close')),
    },
    timeoutServer(),
    {
      name: 'endpoint',
      request: (_ctx, r) => Promise.resolve(r.connection!),
      close: () => {
        log.push('close');
        return Promise.resolve();
      },
    },
  ]);
  const call = (token?: ClientToken) => nscCall(clock, token);
  const conn = await chain.request(
    call(ids.nsc.signer(clock).mint({ spiffeId: MGR_ID })),
    requestWith([{ name: 'nsc', id: 'c1' }], 0, 'c1'),
  );
  t.is(clock.pending, 1, 'the expiry timer');
  await t.throwsAsync(chain.close(call(), conn), { message: 'cannot close' });
  t.is(clock.pending, 0, 'gone with the connection');
  await clock.advance(20 * 60_000);
  t.deepEqual(log, []);
});
