// The liveness prober's rules on a fake clock and an in-memory ICMP addon: when `dead` and `alive`
// fire, which replies count, one socket per netns and family, one timer, errors that never escape.
// The same prober on real raw sockets in network namespaces: liveness.test.ts.
import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { FakeLivenessProber } from '../../../src/host/fake/index.js';
import { SequenceRandom } from '../../../src/host/fake/random.js';
import { icmpLivenessProber } from '../../../src/host/liveness/index.js';
import type { LivenessTarget } from '../../../src/host/liveness/index.js';
import {
  addressBytes,
  addressText,
  readEchoRecord,
  replyRecordWords,
  writeReply,
} from '../../../src/host/liveness/echo-records.js';
import type { IcmpAddon, IcmpSendFailure } from '../../../src/host/socket-buffers/native-addon.js';
import { createLogger } from '../../../src/log/index.js';

interface Sent {
  fd: number;
  ifName: string;
  src: string;
  dst: string;
  id: number;
  seq: number;
}

interface Reply {
  from: string;
  id: number;
  seq: number;
}

/**
 * Raw sockets in memory, speaking the addon's packed records (echo-records.ts): `answers(sent)`
 * decides whether (and from where) an echo is answered.
 */
class MemoryIcmp implements IcmpAddon {
  #next = 100;
  readonly open = new Map<number, { netns: string | null; family: 4 | 6 }>();
  readonly opened: { netns: string | null; family: 4 | 6 }[] = [];
  readonly closed: number[] = [];
  readonly sent: Sent[] = [];
  /** Calls of icmpSend: one per socket and round, whatever its number of watches. */
  sendCalls = 0;
  readonly queued = new Map<number, Reply[]>();
  answers: (s: Sent) => string | undefined = (s) => s.dst;
  openError: ((netns: string | null) => Error | undefined) | undefined;
  sendError: ((s: Sent) => Error | undefined) | undefined;

  icmpOpen(netns: string | null, family: 4 | 6): number {
    const e = this.openError?.(netns);
    if (e !== undefined) throw e;
    const fd = this.#next++;
    this.open.set(fd, { netns, family });
    this.opened.push({ netns, family });
    return fd;
  }

  icmpSend(fd: number, table: Uint8Array, count: number, seq: number): IcmpSendFailure[] | null {
    const sock = this.open.get(fd);
    if (sock === undefined) throw errno('EBADF', 'getsockopt SO_DOMAIN');
    this.sendCalls++;
    const failures: IcmpSendFailure[] = [];
    for (let index = 0; index < count; index++) {
      const r = readEchoRecord(table, index);
      const s = {
        fd,
        ifName: r.ifName,
        src: addressText(sock.family, r.src),
        dst: addressText(sock.family, r.dst),
        id: r.id,
        seq,
      };
      const e = this.sendError?.(s);
      if (e !== undefined) {
        failures.push({ index, errno: 19, message: e.message });
        continue;
      }
      this.sent.push(s);
      const from = this.answers(s);
      if (from !== undefined) this.inject(fd, { from, id: s.id, seq });
    }
    return failures.length === 0 ? null : failures;
  }

  inject(fd: number, r: Reply): void {
    this.queued.set(fd, [...(this.queued.get(fd) ?? []), r]);
  }

  icmpReceive(fd: number, out: Uint32Array): number {
    const q = this.queued.get(fd) ?? [];
    const now = q.splice(0, Math.floor(out.length / replyRecordWords));
    now.forEach((r, i) => {
      writeReply(out, i, { id: r.id, seq: r.seq, from: addressBytes(r.from)!.bytes });
    });
    return now.length;
  }

  icmpClose(fd: number): void {
    this.open.delete(fd);
    this.closed.push(fd);
  }
}

function errno(code: string, syscall: string): Error {
  return Object.assign(new Error(`${syscall}: ${code}`), { code, syscall });
}

const a: LivenessTarget = { netns: '/proc/self/ns/net', ifName: 'nsm-a', src: '10.1.0.1', dst: '10.1.0.2' };
const b: LivenessTarget = { netns: '/proc/self/ns/net', ifName: 'nsm-b', src: '10.1.1.1', dst: '10.1.1.2' };

function harness(o: { misses?: number; sweepRounds?: number } = {}): {
  clock: FakeClock;
  icmp: MemoryIcmp;
  prober: ReturnType<typeof icmpLivenessProber>;
  events: string[];
  on: (name: string) => { dead(r: string): void; alive(): void };
  logs: () => { level: string; msg: string; err?: string }[];
} {
  const clock = new FakeClock();
  const icmp = new MemoryIcmp();
  const events: string[] = [];
  const raw: string[] = [];
  const prober = icmpLivenessProber({
    intervalMs: 100,
    misses: o.misses ?? 3,
    ...(o.sweepRounds === undefined ? {} : { sweepRounds: o.sweepRounds }),
    clock,
    addon: icmp,
    random: new SequenceRandom('id', [0.5]),
    log: createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } }),
  });
  return {
    clock,
    icmp,
    prober,
    events,
    on: (name) => ({
      dead: (r) => void events.push(`${name} dead: ${r}`),
      alive: () => void events.push(`${name} alive`),
    }),
    logs: () => raw.map((l) => JSON.parse(l) as { level: string; msg: string; err?: string }),
  };
}

test('answered echoes: no event; silence: dead once after `misses` intervals; replies again: alive once', async (t) => {
  const h = harness();
  h.prober.watch(a, h.on('a'));
  await h.clock.advance(1000);
  t.deepEqual(h.events, []);
  t.true(h.icmp.sent.length >= 9, 'one echo per interval');
  t.deepEqual(h.icmp.sent.map((s) => [s.ifName, s.src, s.dst]).slice(0, 1), [
    ['nsm-a', '10.1.0.1', '10.1.0.2'],
  ]);

  // The echo sent at t=1000 was answered; the next three are not, each judged one interval later.
  h.icmp.answers = () => undefined;
  await h.clock.advance(399);
  t.deepEqual(h.events, [], 'two misses are not enough');
  await h.clock.advance(1);
  t.is(h.events.length, 1);
  t.regex(
    h.events[0] ?? '',
    /^a dead: no echo reply from 10\.1\.0\.2 from 10\.1\.0\.1 on nsm-a in netns \/proc\/self\/ns\/net for 3 intervals of 100 ms$/,
  );
  await h.clock.advance(1000);
  t.is(h.events.length, 1, 'dead is said once');

  h.icmp.answers = (s) => s.dst;
  await h.clock.advance(200);
  t.deepEqual(h.events.slice(1), ['a alive']);
  await h.clock.advance(1000);
  t.is(h.events.length, 2, 'alive is said once');
  h.prober.close();
});

test('a target that never answered is dead after misses + 1 intervals at most', async (t) => {
  const h = harness();
  h.icmp.answers = () => undefined;
  h.prober.watch(a, h.on('a'));
  await h.clock.advance(399);
  t.deepEqual(h.events, []);
  await h.clock.advance(1);
  t.is(h.events.length, 1);
  h.prober.close();
});

test('only replies with the watch id, one of its own seqs and the target address count', async (t) => {
  const h = harness({ misses: 1 });
  h.icmp.answers = () => undefined;
  h.prober.watch(a, h.on('a'));
  await h.clock.advance(100); // first echo out
  const first = h.icmp.sent[0];
  if (first === undefined) return t.fail('no echo sent');
  h.icmp.inject(first.fd, { from: '10.1.0.9', id: first.id, seq: first.seq }); // wrong address
  h.icmp.inject(first.fd, { from: a.dst, id: first.id, seq: (first.seq + 100) & 0xffff }); // never sent
  h.icmp.inject(first.fd, { from: a.dst, id: (first.id + 1) & 0xffff, seq: first.seq }); // other id
  await h.clock.advance(100);
  t.is(h.events.length, 1, 'none of them counted');
  // A late reply to an earlier echo of the same watch does count.
  h.icmp.inject(first.fd, { from: a.dst, id: first.id, seq: first.seq });
  await h.clock.advance(100);
  t.deepEqual(h.events.slice(1), ['a alive']);
  h.prober.close();
});

test('a late reply to a stopped watch never counts for the next watch', async (t) => {
  const h = harness({ misses: 1 });
  h.icmp.answers = () => undefined;
  const w1 = h.prober.watch(a, h.on('old'));
  await h.clock.advance(100);
  const old = h.icmp.sent.at(-1);
  w1.stop();
  // The socket is gone with its last watch; keep one open so the next watch shares it.
  h.prober.watch(b, h.on('b'));
  h.prober.watch(a, h.on('new'));
  await h.clock.advance(100);
  const fresh = h.icmp.sent.filter((s) => s.ifName === 'nsm-a').at(-1);
  if (old === undefined || fresh === undefined) return t.fail('no echoes');
  t.not(fresh.seq, old.seq);
  // Even with the same id, the old seq is not one the new watch sent.
  h.icmp.inject(fresh.fd, { from: a.dst, id: fresh.id, seq: old.seq });
  await h.clock.advance(100);
  t.true(h.events.some((e) => e.startsWith('new dead')));
  t.false(
    h.events.some((e) => e.startsWith('old')),
    'a stopped watch hears nothing',
  );
  h.prober.close();
});

test('one socket per netns and family, ids unique on it; the last stop closes it and the timer', async (t) => {
  const h = harness();
  const v6: LivenessTarget = { netns: undefined, ifName: 'nsm-c', src: 'fd00::1', dst: 'fd00:0::2' };
  const wa = h.prober.watch(a, h.on('a'));
  const wb = h.prober.watch(b, h.on('b'));
  const wc = h.prober.watch(v6, h.on('c'));
  await h.clock.advance(500);
  t.deepEqual(
    h.icmp.opened,
    [
      { netns: '/proc/self/ns/net', family: 4 },
      { netns: null, family: 6 },
    ],
    'a and b share a socket',
  );
  const ids = new Set(h.icmp.sent.filter((s) => s.ifName !== 'nsm-c').map((s) => s.id));
  t.is(ids.size, 2);
  t.deepEqual(h.events, [], 'the v6 reply from fd00::2 matches fd00:0::2');
  wa.stop();
  wa.stop();
  t.is(h.icmp.open.size, 2, 'b still uses the v4 socket');
  wb.stop();
  t.is(h.icmp.open.size, 1);
  wc.stop();
  t.is(h.icmp.open.size, 0);
  t.is(h.clock.pending, 0, 'no timer while nothing is watched');
  const before = h.icmp.sent.length;
  await h.clock.advance(1000);
  t.is(h.icmp.sent.length, before);
  t.deepEqual(h.events, []);
});

test('a send error is a miss, logged once at debug, and never escapes the timer', async (t) => {
  const h = harness();
  h.icmp.sendError = () => errno('ENODEV', 'ioctl SIOCGIFINDEX');
  h.prober.watch(a, h.on('a'));
  const other = h.prober.watch(b, h.on('b'));
  await h.clock.advance(400);
  t.deepEqual(h.events.length, 2);
  t.regex(h.events[0] ?? '', /^a dead: .*the last echo could not be sent: ioctl SIOCGIFINDEX: ENODEV$/);
  const debug = h.logs().filter((l) => l.msg === 'liveness: cannot send an echo request');
  t.is(debug.length, 2, 'once per watch');
  t.true(debug.every((l) => l.level === 'debug'));
  await h.clock.advance(500);
  t.is(h.logs().filter((l) => l.msg === 'liveness: cannot send an echo request').length, 2);
  other.stop();
  h.icmp.sendError = undefined;
  await h.clock.advance(200);
  t.deepEqual(h.events.slice(2), ['a alive'], 'the interface came back');
  h.prober.close();
});

test('a netns that cannot be opened: dead at the first tick with a reason naming it; retried', async (t) => {
  const h = harness();
  h.icmp.openError = (ns) => (ns === null ? undefined : errno('ENOENT', 'open netns'));
  const gone: LivenessTarget = { ...a, netns: '/var/run/netns/nsm-no-such-netns' };
  h.prober.watch(gone, h.on('gone'));
  await h.clock.advance(100);
  t.deepEqual(h.events, [
    'gone dead: cannot ping 10.1.0.2 from 10.1.0.1 on nsm-a in netns /var/run/netns/nsm-no-such-netns: netns /var/run/netns/nsm-no-such-netns does not exist (any more)',
  ]);
  const there: LivenessTarget = { ...a, netns: '/proc/self/ns/net' };
  h.prober.watch(there, h.on('there'));
  await h.clock.advance(500);
  t.is(h.events.length, 2);
  t.regex(
    h.events[1] ?? '',
    /^there dead: .*cannot open an ICMPv4 socket in netns \/proc\/self\/ns\/net: open netns: ENOENT$/,
  );
  h.icmp.openError = undefined;
  await h.clock.advance(200);
  t.deepEqual(h.events.slice(2), ['there alive'], 'opened again once possible');
  h.prober.close();
  t.is(h.icmp.open.size, 0);
});

test('a handler that throws or stops watches does not break the round', async (t) => {
  const h = harness({ misses: 1 });
  h.icmp.answers = () => undefined;
  const later: { wb?: { stop(): void } } = {};
  h.prober.watch(a, {
    dead: () => {
      later.wb?.stop();
      throw new Error('boom');
    },
  });
  later.wb = h.prober.watch(b, h.on('b'));
  await h.clock.advance(200);
  t.deepEqual(h.events, [], 'b was stopped by a’s handler before its turn');
  t.true(h.logs().some((l) => l.msg === 'liveness: a handler threw' && l.err === 'boom'));
  h.icmp.answers = (s) => s.dst;
  await h.clock.advance(300);
  t.is(h.clock.pending, 1, 'still ticking');
  h.prober.close();
  t.is(h.clock.pending, 0);
  t.throws(() => h.prober.watch(a, h.on('late')), { instanceOf: AgentError });
});

test('600 watches on one socket: each round is 3 sends of one seq, 2 ms apart; a failed record is its own watch', async (t) => {
  const h = harness();
  const dst = (i: number): string => `10.2.${Math.floor(i / 250)}.${(i % 250) + 1}`;
  const broken = dst(555); // in the third slice
  h.icmp.sendError = (s) => (s.dst === broken ? errno('EADDRNOTAVAIL', 'sendmsg') : undefined);
  for (let i = 0; i < 600; i++) {
    h.prober.watch({ netns: undefined, ifName: 'nsm-wg', src: '10.1.0.1', dst: dst(i) }, h.on(dst(i)));
  }
  await h.clock.advance(100);
  t.is(h.icmp.sendCalls, 1, 'the first slice goes out with the round');
  await h.clock.advance(4);
  t.is(h.icmp.sendCalls, 3, 'the other two 2 ms apart');
  t.is(h.icmp.sent.length, 599);
  t.is(new Set(h.icmp.sent.map((s) => s.seq)).size, 1, 'one seq for the round');
  t.is(new Set(h.icmp.sent.map((s) => s.dst)).size, 599, 'every other watch once');
  await h.clock.advance(1000);
  t.is(h.icmp.sendCalls, 33, '3 calls a round');
  t.deepEqual(h.events.length, 1);
  t.regex(
    h.events[0] ?? '',
    /^10\.2\.2\.56 dead: no echo reply from 10\.2\.2\.56 .*the last echo could not be sent: sendmsg: EADDRNOTAVAIL$/,
  );
  // close() in the middle of a round: the rest of it is not sent.
  await h.clock.advance(96);
  const calls = h.icmp.sendCalls;
  h.prober.close();
  t.is(h.clock.pending, 0, 'no slice timer left');
  await h.clock.advance(100);
  t.is(h.icmp.sendCalls, calls);
});

/** `n` targets behind one remote agent, through the agent's WireGuard device. */
function groupOf(n: number): LivenessTarget[] {
  return Array.from({ length: n }, (_, i) => ({
    netns: undefined,
    ifName: 'nsm-wg0',
    src: '10.1.0.1',
    dst: `10.9.${Math.floor(i / 250)}.${(i % 250) + 1}`,
    group: 'agent-a',
  }));
}

/** The destinations of the echoes each of the next `rounds` rounds sends (the clock moves by them). */
async function rounds(h: ReturnType<typeof harness>, n: number): Promise<string[][]> {
  const out: string[][] = [];
  for (let i = 0; i < n; i++) {
    const before = h.icmp.sent.length;
    await h.clock.advance(100);
    out.push(h.icmp.sent.slice(before).map((s) => s.dst));
  }
  return out;
}

/** Rounds (at most `max`) until the first liveness event; how many it took. */
async function roundsUntilEvent(h: ReturnType<typeof harness>, max = 20): Promise<number> {
  let round = 0;
  while (h.events.length === 0 && round < max) {
    await rounds(h, 1);
    round++;
  }
  return round;
}

/** The dead event of a grouped member on nsm-wg0 (misses 3, interval 100 ms). */
const deadOnWg0 = (dst: string): string =>
  `${dst} dead: no echo reply from ${dst} from 10.1.0.1 on nsm-wg0 for 3 intervals of 100 ms`;

test('a group that answers: each round pings the representative and a tenth of the members; each member at least every 10 rounds', async (t) => {
  const h = harness({ sweepRounds: 10 });
  const members = groupOf(40);
  for (const m of members) h.prober.watch(m, h.on(m.dst));
  const [first = []] = await rounds(h, 1);
  t.is(first.length, 40, 'a new member is pinged every round until it answers');
  const later = await rounds(h, 30);
  t.deepEqual(h.events, []);
  const counts = later.map((r) => r.length);
  t.log(`echoes per round: ${counts.join(' ')}`);
  t.true(
    counts.every((c) => c >= 4 && c <= 5),
    `1 + 40/10 a round, not 40: ${counts.join(' ')}`,
  );
  t.is(new Set(later.map((r) => r[0])).size, 1, 'the same representative every round');
  for (let from = 0; from + 10 <= later.length; from++) {
    const seen = new Set(later.slice(from, from + 10).flat());
    t.is(seen.size, 40, `every member within rounds ${from + 2}…${from + 11}`);
  }
  h.prober.close();
});

test('one member of a group stops answering: it alone is dead within sweep + misses rounds; alive once when back', async (t) => {
  const h = harness({ sweepRounds: 10 });
  const members = groupOf(40);
  for (const m of members) h.prober.watch(m, h.on(m.dst));
  await rounds(h, 5);
  const broken = members[17]?.dst ?? '';
  h.icmp.answers = (s) => (s.dst === broken ? undefined : s.dst);
  const round = await roundsUntilEvent(h);
  t.log(`dead ${round} rounds after its far end stopped answering`);
  t.true(round <= 10 + 3, `within sweep + misses rounds: ${round}`);
  t.true(round >= 3, 'not before misses rounds');
  t.is(h.events.length, 1);
  t.regex(h.events[0] ?? '', new RegExp(`^${broken.replaceAll('.', '\\.')} dead: no echo reply from `));
  const whileDead = await rounds(h, 10);
  t.true(
    whileDead.every((r) => r.includes(broken) && r.length <= 6),
    'the dead member is pinged every round, the others as before',
  );
  t.is(h.events.length, 1, 'the others stay alive');
  h.icmp.answers = (s) => s.dst;
  await rounds(h, 3);
  t.deepEqual(h.events.slice(1), [`${broken} alive`]);
  await rounds(h, 10);
  t.is(h.events.length, 2, 'alive is said once');
  h.prober.close();
});

test('a whole group stops answering: every member dead after `misses` intervals, as an ungrouped target; alive once each', async (t) => {
  const h = harness({ sweepRounds: 10 });
  const members = groupOf(40);
  const alone: LivenessTarget = { ...a, netns: undefined, ifName: 'nsm-wg0', src: '10.1.0.1' };
  for (const m of members) h.prober.watch(m, h.on(m.dst));
  h.prober.watch(alone, h.on('alone'));
  await h.clock.advance(1000);
  t.deepEqual(h.events, []);
  // As in the first test: the echoes sent at t=1000 were answered, the next three are not.
  h.icmp.answers = () => undefined;
  await h.clock.advance(300);
  const silentRound = h.icmp.sent.slice(-41);
  t.is(
    new Set(silentRound.map((s) => s.dst)).size,
    41,
    'after a round without any reply from the group, every member is pinged',
  );
  await h.clock.advance(99);
  t.deepEqual(h.events, [], 'two misses are not enough');
  await h.clock.advance(1);
  t.is(h.events.length, 41, 'all dead in the same round as the ungrouped target');
  t.true(
    h.events.includes(
      `alone dead: no echo reply from 10.1.0.2 from 10.1.0.1 on nsm-wg0 for 3 intervals of 100 ms`,
    ),
  );
  t.true(
    h.events.some((e) =>
      /^10\.9\.0\.40 dead: no echo reply from 10\.9\.0\.40 .* for 3 intervals of 100 ms$/.test(e),
    ),
  );

  h.icmp.answers = (s) => s.dst;
  await h.clock.advance(200);
  t.is(h.events.filter((e) => e.endsWith(' alive')).length, 41, 'alive once each');
  const after = await rounds(h, 12);
  t.is(h.events.length, 82, 'no more events');
  t.true(
    after.slice(1).every((r) => r.length <= 6),
    `back to the representative and the sweep (+1 ungrouped): ${after.map((r) => r.length).join(' ')}`,
  );
  h.prober.close();
});

test('a group while watches come and go: new members pinged until they answer, a stopped representative replaced without a miss', async (t) => {
  const h = harness({ sweepRounds: 10 });
  const members = groupOf(20);
  const watches = members.map((m) => h.prober.watch(m, h.on(m.dst)));
  await rounds(h, 3);
  const [rep] = (await rounds(h, 1))[0] ?? [];
  t.is(rep, members[0]?.dst, 'the first member heard stands for the group');

  // Five new members mid-run; one of them never answers.
  const added = groupOf(25).slice(20);
  const mute = added[4]?.dst ?? '';
  h.icmp.answers = (s) => (s.dst === mute ? undefined : s.dst);
  for (const m of added) h.prober.watch(m, h.on(m.dst));
  const next = await rounds(h, 4);
  t.true(
    added.every((m) => next[0]?.includes(m.dst)),
    'the new members go out in the next round',
  );
  t.true(
    next.every((r) => r.includes(mute)),
    'one that never answered is pinged every round',
  );
  t.deepEqual(h.events, [deadOnWg0(mute)]);

  // The representative stops: another member stands in, with no round judged as silent.
  watches[0]?.stop();
  const without = await rounds(h, 15);
  t.false(without.flat().includes(rep ?? ''), 'a stopped watch is not pinged');
  t.true(
    without.every((r) => r.length <= 5),
    `no round pings the whole group: ${without.map((r) => r.length).join(' ')}`,
  );
  t.is(h.events.length, 1, 'no other member got a miss that counted');

  // The same group name in another netns is another group: its silence kills only its members.
  const elsewhere: LivenessTarget = { ...a, group: 'agent-a' };
  h.icmp.answers = (s) => (s.dst === mute || s.dst === a.dst ? undefined : s.dst);
  h.prober.watch(elsewhere, h.on('elsewhere'));
  await rounds(h, 5);
  t.deepEqual(h.events.slice(1), [
    'elsewhere dead: no echo reply from 10.1.0.2 from 10.1.0.1 on nsm-a in netns /proc/self/ns/net for 3 intervals of 100 ms',
  ]);

  h.prober.close();
  t.is(h.icmp.open.size, 0);
  t.is(h.clock.pending, 0);
});

test('200 members: whichever breaks (the representative, or a member of any sweep turn) is alone dead within sweep + misses rounds', async (t) => {
  const members = groupOf(200);
  // members[0] is the representative; 1…10 have the ten sweep phases (given in watch order).
  for (const broken of members.slice(0, 11).map((m) => m.dst)) {
    const h = harness({ sweepRounds: 10 });
    for (const m of members) h.prober.watch(m, h.on(m.dst));
    await rounds(h, 12);
    h.icmp.answers = (s) => (s.dst === broken ? undefined : s.dst);
    const round = await roundsUntilEvent(h);
    t.true(round >= 3 && round <= 10 + 3, `${broken}: dead after ${round} rounds`);
    t.deepEqual(h.events, [deadOnWg0(broken)]);
    h.prober.close();
  }
});

test('members stopped from every sweep turn: the others are still each pinged every sweep, and one that breaks is found', async (t) => {
  const h = harness({ sweepRounds: 10 });
  const members = groupOf(100);
  const watches = members.map((m) => h.prober.watch(m, h.on(m.dst)));
  await rounds(h, 12);
  // Stop every third member, the representative first: each turn loses some from its middle and end.
  const stopped = new Set<string>();
  for (let i = 0; i < members.length; i += 3) {
    watches[i]?.stop();
    stopped.add(members[i]?.dst ?? '');
  }
  const after = await rounds(h, 20);
  const pinged = after.flat();
  t.false(
    pinged.some((d) => stopped.has(d)),
    'a stopped member is never pinged',
  );
  const left = members.map((m) => m.dst).filter((d) => !stopped.has(d));
  for (let from = 1; from + 10 <= after.length; from++) {
    const seen = new Set(after.slice(from, from + 10).flat());
    t.deepEqual(
      left.filter((d) => !seen.has(d)),
      [],
      `every member left within rounds ${from + 1}…${from + 10}`,
    );
  }
  t.true(
    after.slice(1).every((r) => r.length <= 1 + Math.ceil(left.length / 10) + 1),
    `still about 1 + 67/10 echoes a round: ${after.map((r) => r.length).join(' ')}`,
  );
  const broken = left[40] ?? '';
  h.icmp.answers = (s) => (s.dst === broken ? undefined : s.dst);
  await rounds(h, 13);
  t.deepEqual(h.events, [deadOnWg0(broken)]);
  h.prober.close();
});

test('two groups and an ungrouped target on one socket: the silent group and the target die in the same round; the other group, never', async (t) => {
  const h = harness({ sweepRounds: 10 });
  const quiet = groupOf(50).map((m) => ({ ...m, group: 'agent-q' }));
  const loud = groupOf(100)
    .slice(50)
    .map((m) => ({ ...m, group: 'agent-l' }));
  const alone: LivenessTarget = { netns: undefined, ifName: 'nsm-wg0', src: '10.1.0.1', dst: '10.1.0.2' };
  for (const m of [...quiet, ...loud]) h.prober.watch(m, h.on(m.dst));
  h.prober.watch(alone, h.on('alone'));
  await rounds(h, 15);
  // One member of the loud group has a miss already: the round it breaks does not change the others.
  const shaky = loud[7]?.dst ?? '';
  const silent = new Set([...quiet.map((m) => m.dst), alone.dst]);
  h.icmp.answers = (s) => (s.dst === shaky ? undefined : s.dst);
  await rounds(h, 1);
  h.icmp.answers = (s) => (silent.has(s.dst) ? undefined : s.dst);
  // The next round's echoes are the first unanswered, judged a round later (as in the first test).
  await rounds(h, 3);
  t.deepEqual(h.events, [], 'two misses are not enough');
  await rounds(h, 1);
  t.is(
    h.events.length,
    51,
    `the quiet group and the ungrouped target, all in the third round: ${h.events.length}`,
  );
  t.true(h.events.every((e) => / dead: no echo reply from .* for 3 intervals of 100 ms$/.test(e)));
  t.deepEqual(h.events.map((e) => e.split(' ')[0]).sort(), [...quiet.map((m) => m.dst), 'alone'].sort());
  await rounds(h, 15);
  t.is(h.events.length, 51, 'the loud group stays alive, its shaky member too');
  h.prober.close();
});

test('a silent group whose dead handlers stop other members: no event for those, the rest dead the same round', async (t) => {
  const h = harness({ sweepRounds: 10, misses: 1 });
  const members = groupOf(30);
  const watches = new Map<string, { stop(): void }>();
  const events: string[] = [];
  for (const m of members) {
    watches.set(
      m.dst,
      h.prober.watch(m, {
        dead: () => {
          events.push(m.dst);
          // The first to die stops the last ten members (pinged this round or not).
          if (events.length === 1) for (const x of members.slice(20)) watches.get(x.dst)?.stop();
        },
      }),
    );
  }
  await rounds(h, 12);
  h.icmp.answers = () => undefined;
  await rounds(h, 1);
  t.deepEqual(events, [], 'the round that sent the first unanswered echoes');
  await rounds(h, 1);
  t.is(events.length, 20, `the twenty left, in one round: ${events.join(' ')}`);
  t.true(members.slice(0, 20).every((m) => events.includes(m.dst)));
  await rounds(h, 3);
  t.is(events.length, 20, 'dead once each, nothing for the stopped');
  h.prober.close();
  t.is(h.clock.pending, 0);
});

test('sweepRounds must be a whole number >= 1; 1 pings every member every round', async (t) => {
  t.throws(() => icmpLivenessProber({ sweepRounds: 0 }), { instanceOf: AgentError });
  t.throws(() => icmpLivenessProber({ sweepRounds: 2.5 }), { instanceOf: AgentError });
  const h = harness({ sweepRounds: 1 });
  for (const m of groupOf(30)) h.prober.watch(m, h.on(m.dst));
  const r = await rounds(h, 5);
  t.deepEqual(
    r.map((x) => x.length),
    [30, 30, 30, 30, 30],
  );
  h.prober.close();
});

test('bad targets are refused at watch()', (t) => {
  const h = harness();
  const bad: LivenessTarget[] = [
    { ...a, src: '10.1.0.1/24' },
    { ...a, dst: 'fd00::2' },
    { ...a, ifName: '' },
    { ...a, ifName: 'a-name-far-too-long' },
    { ...a, netns: 'relative/path' },
  ];
  for (const target of bad) {
    t.throws(() => h.prober.watch(target, h.on('x')), { instanceOf: AgentError }, JSON.stringify(target));
  }
  t.is(h.clock.pending, 0);
});

test('FakeLivenessProber: tests mark targets dead and alive, and see what is watched', (t) => {
  const fake = new FakeLivenessProber();
  const events: string[] = [];
  const wa = fake.watch(a, {
    dead: (r) => void events.push(`a dead: ${r}`),
    alive: () => void events.push('a alive'),
  });
  fake.watch(b, { dead: (r) => void events.push(`b dead: ${r}`) });
  const grouped: LivenessTarget = { ...b, dst: '10.1.1.3', group: 'agent:x' };
  const wg = fake.watch(grouped, { dead: () => undefined });
  t.deepEqual(fake.watched({ group: 'agent:x' }), [grouped], 'the group is recorded');
  wg.stop();
  t.deepEqual(fake.watched(), [a, b]);
  t.deepEqual(fake.watched({ dst: b.dst }), [b]);
  t.is(fake.markDead({ ifName: 'nsm-a' }, 'cable cut'), 1);
  t.is(fake.markDead({ ifName: 'nsm-a' }), 0, 'already dead');
  t.is(fake.markAlive(), 1, 'only a was dead');
  t.is(
    fake.markDead((x) => x.src.startsWith('10.1.')),
    2,
  );
  t.deepEqual(events, [
    'a dead: cable cut',
    'a alive',
    'a dead: no echo reply (fake)',
    'b dead: no echo reply (fake)',
  ]);
  t.deepEqual(
    fake.watches.map((w) => w.state),
    ['dead', 'dead'],
  );
  wa.stop();
  wa.stop();
  t.deepEqual(fake.watched(), [b]);
  t.deepEqual(fake.history, [a, b, grouped]);
  fake.close();
  t.deepEqual(fake.watched(), []);
  t.throws(() => fake.watch(a, { dead: () => undefined }), { instanceOf: AgentError });
});
