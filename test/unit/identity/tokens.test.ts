import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock, flushMicrotasks } from '../../../src/host/fake/index.js';
import { formatToken, parseToken, TokenStore, TOKEN_PREFIX } from '../../../src/identity/index.js';
import { MemoryStore } from '../../../src/store/index.js';

const PIN = new Uint8Array(32).fill(7);
const URL = 'tcp://control.example:5002';

function setup(): { store: MemoryStore; clock: FakeClock; tokens: TokenStore } {
  const clock = new FakeClock();
  const store = new MemoryStore({ clock });
  return { store, clock, tokens: new TokenStore({ store, clock }) };
}

test('a token is one self-describing string: server URL, CA pin and secret round-trip', (t) => {
  const token = {
    id: '0011223344556677',
    serverUrl: URL,
    caPin: PIN,
    secret: new Uint8Array(32).fill(9),
  };
  const text = formatToken(token);
  t.true(text.startsWith(TOKEN_PREFIX));
  t.regex(text, /^nsmagent1_[A-Za-z0-9_-]+$/);
  t.deepEqual(parseToken(`  ${text}\n`), token);
});

test('parseToken says what a token looks like and what is wrong with this one', (t) => {
  const good = formatToken({
    id: '0011223344556677',
    serverUrl: URL,
    caPin: PIN,
    secret: new Uint8Array(32),
  });
  const cases: [string, RegExp][] = [
    ['', /it is empty.*nsmagent1_/],
    ['hello', /does not start with nsmagent1_.*token create/],
    ['nsmagent7_AAAA', /format 7 is not known/],
    [good.slice(0, 40) + ' ' + good.slice(40), /outside base64url/],
    [good.slice(0, 30), /too short.*cut/],
    [good.slice(0, -1), /damaged|too short/],
    [good.slice(0, 20) + (good[20] === 'A' ? 'B' : 'A') + good.slice(21), /damaged.*copy it again/],
  ];
  for (const [text, re] of cases) {
    const e = t.throws(() => parseToken(text), { instanceOf: AgentError }, text);
    t.is(e.code, 'INVALID_ARGUMENT');
    t.regex(e.message, re, text);
  }
});

test('the store holds only a hash of the secret, never the secret or the token', async (t) => {
  const { store, tokens } = setup();
  const { token, info } = await tokens.create({ serverUrl: URL, caPin: PIN, labels: { site: 'lab' } });
  const { secret } = parseToken(token);
  const { entries } = await store.list('');
  t.is(entries.length, 1);
  const bytes = Buffer.from(entries[0]!.value);
  for (const form of [
    Buffer.from(secret),
    Buffer.from(Buffer.from(secret).toString('hex')),
    Buffer.from(Buffer.from(secret).toString('base64url')),
    Buffer.from(Buffer.from(secret).toString('base64')),
    Buffer.from(token),
  ]) {
    t.is(bytes.indexOf(form), -1);
  }
  t.false('secretSha256' in info);
  t.deepEqual(info.labels, { site: 'lab' });
  t.is(info.usesLeft, 1);
  t.is(info.expiresAt - info.createdAt, 3600_000, 'default lifetime 1 h');
});

test('a one-time token works once; the second use is refused as "has already been used" (R2)', async (t) => {
  const { tokens } = setup();
  const { token } = await tokens.create({ serverUrl: URL, caPin: PIN });
  const used = await tokens.consume(token);
  t.is(used.usesLeft, 0);
  const e = await t.throwsAsync(tokens.consume(token), { instanceOf: AgentError });
  t.is(e.code, 'UNAUTHENTICATED');
  t.regex(
    e.message,
    /^token [0-9a-f]+ has already been used \(its one use taken, last at 2\d{3}-.*Z\); create a new one/,
  );
  t.deepEqual((e.details as { reason?: string }).reason, 'used');
  const [listed] = await tokens.list();
  t.is(listed?.state, 'used', 'token list shows it as used until it is pruned');
  t.is(listed?.usesLeft, 0);
});

test('used-up, expired and revoked records are pruned once they are past expiry plus the grace', async (t) => {
  const { tokens, clock } = setup();
  const used = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 60_000 });
  await tokens.consume(used.token);
  const unused = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 600_000 });
  t.is(await tokens.prune(0), 0, 'nothing has ended yet');
  await clock.advance(60_000);
  t.is(await tokens.prune(30_000), 0, 'inside the grace');
  await clock.advance(30_000);
  t.is(await tokens.prune(30_000), 1);
  t.deepEqual(
    (await tokens.list()).map((i) => i.id),
    [unused.info.id],
  );
  const e = await t.throwsAsync(tokens.consume(used.token), { instanceOf: AgentError });
  t.regex(e.message, /is not valid on this server/);
});

test('an expired token is refused with its expiry time and is burned (R1)', async (t) => {
  const { tokens, clock } = setup();
  const { token, info } = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 60_000, uses: 3 });
  await clock.advance(60_000);
  t.is((await tokens.list())[0]?.state, 'expired');
  const e = await t.throwsAsync(tokens.consume(token), { instanceOf: AgentError });
  t.is(e.code, 'UNAUTHENTICATED');
  t.is(
    e.message,
    `token ${info.id} expired at ${new Date(info.expiresAt).toISOString()}; create a new one with \`nsm-agent token create\` on the control server`,
  );
  const again = await t.throwsAsync(tokens.consume(token), { instanceOf: AgentError });
  t.regex(again.message, /expired at/, 'a later attempt still says why');
  t.is((await tokens.list())[0]?.usesLeft, 0, 'burned');
});

test('a revoked token is refused as revoked, then burned', async (t) => {
  const { tokens } = setup();
  const { token, info } = await tokens.create({ serverUrl: URL, caPin: PIN, uses: 2 });
  const revoked = await tokens.revoke(info.id);
  t.is(revoked.state, 'revoked');
  const e = await t.throwsAsync(tokens.consume(token), { instanceOf: AgentError });
  t.regex(e.message, /was revoked at .*token create/);
  await t.throwsAsync(tokens.consume(token), { message: /was revoked at/ });
  t.is((await tokens.list())[0]?.usesLeft, 0, 'burned');
  t.is((await tokens.revoke(info.id)).state, 'revoked', 'revoking again is a no-op');
  await t.throwsAsync(tokens.revoke('0123456789abcdef'), { message: /there is no token .*token list/ });
});

test('a wrong secret gets the unknown-token message and does not burn the token', async (t) => {
  const { tokens } = setup();
  const { token } = await tokens.create({ serverUrl: URL, caPin: PIN });
  const parsed = parseToken(token);
  const forged = formatToken({ ...parsed, secret: new Uint8Array(32).fill(1) });
  const e = await t.throwsAsync(tokens.consume(forged), { instanceOf: AgentError });
  t.regex(e.message, /is not valid on this server: .*secret is wrong/);
  t.is((await tokens.consume(token)).usesLeft, 0);
});

test('20 parallel consumers of a 5-use token: exactly 5 succeed', async (t) => {
  const { tokens } = setup();
  const { token } = await tokens.create({ serverUrl: URL, caPin: PIN, uses: 5 });
  const results = await Promise.allSettled(Array.from({ length: 20 }, () => tokens.consume(token)));
  const ok = results.filter((r) => r.status === 'fulfilled');
  t.is(ok.length, 5);
  t.deepEqual(ok.map((r) => r.value.usesLeft).sort(), [0, 1, 2, 3, 4]);
  for (const r of results) {
    if (r.status === 'rejected') t.regex(String(r.reason), /has already been used/);
  }
});

test('create validates uses, lifetime, URL and labels', async (t) => {
  const { tokens } = setup();
  await t.throwsAsync(tokens.create({ serverUrl: URL, caPin: PIN, uses: 0 }), { message: /whole number/ });
  await t.throwsAsync(tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: -1 }), { message: /lifetime/ });
  await t.throwsAsync(tokens.create({ serverUrl: 'https://x', caPin: PIN }), {
    message: /invalid gRPC address/,
  });
  await t.throwsAsync(tokens.create({ serverUrl: URL, caPin: PIN, labels: { 'bad key!': 'x' } }), {
    message: /label key/,
  });
});

test('prune removes expired and revoked tokens only', async (t) => {
  const { tokens, clock } = setup();
  await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 1000 });
  const keep = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 3600_000 });
  const gone = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 3600_000 });
  await tokens.revoke(gone.info.id);
  await clock.advance(2000);
  t.is(await tokens.prune(), 2);
  t.deepEqual(
    (await tokens.list()).map((i) => i.id),
    [keep.info.id],
  );
});

test('a running server prunes ended tokens on its own: at start and every interval, after the grace', async (t) => {
  const { tokens, clock } = setup();
  const ended = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 60_000 });
  const live = await tokens.create({ serverUrl: URL, caPin: PIN, ttlMs: 10 * 3600_000 });
  const pruning = tokens.startPruning({ everyMs: 3600_000, graceMs: 3600_000 });
  try {
    await flushMicrotasks();
    t.is((await tokens.list()).length, 2, 'the expired token is still inside its grace');
    await clock.advance(3600_000); // 1 h: the token ended 59 min ago
    t.is((await tokens.list()).length, 2);
    await clock.advance(3600_000); // 2 h: past expiry + grace
    t.deepEqual(
      (await tokens.list()).map((i) => i.id),
      [live.info.id],
    );
    await t.throwsAsync(tokens.consume(ended.token), { message: /is not valid on this server/ });
  } finally {
    await pruning.stop();
  }
  t.is(clock.pending, 0, 'stop() leaves no timer behind');
});
