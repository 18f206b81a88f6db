// The ICMP liveness prober on real raw sockets (the native addon) in two network namespaces joined
// by a veth pair: the agent's side A, where the watched interface lives, and the peer P, which
// answers the echoes until told not to. Root only; the namespaces are removed on every exit path.
import { execFileSync, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { icmpLivenessProber } from '../../../src/host/liveness/index.js';
import type { LivenessProber, LivenessTarget } from '../../../src/host/liveness/index.js';

const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const root = fileURLToPath(new URL('../../../', import.meta.url));
const tag = String(process.pid % 100_000);
const nsA = `nsmlv-a-${tag}`;
const nsP = `nsmlv-p-${tag}`;
const pathA = `/var/run/netns/${nsA}`;
const vethA = `lva${tag}`;
const vethP = `lvp${tag}`;
const silent = `lvs${tag}`;
const intervalMs = 100;
const misses = 3;
/** dead must come within misses + 1 intervals; the rest is slack for a loaded machine. */
const deadWithinMs = (misses + 1) * intervalMs + 400;

const v4: LivenessTarget = { netns: pathA, ifName: vethA, src: '10.203.0.1', dst: '10.203.0.2' };
const v4b: LivenessTarget = { netns: pathA, ifName: vethA, src: '10.203.0.1', dst: '10.203.0.3' };
const v6: LivenessTarget = { netns: pathA, ifName: vethA, src: 'fd77:203::1', dst: 'fd77:203::2' };

function ip(...args: string[]): void {
  execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'], timeout: 10_000 });
}

function quietly(f: () => void): void {
  try {
    f();
  } catch {
    // already gone
  }
}

function echoIgnoreAll(on: boolean): void {
  execFileSync(
    'ip',
    ['netns', 'exec', nsP, 'sysctl', '-q', '-w', `net.ipv4.icmp_echo_ignore_all=${on ? 1 : 0}`],
    {
      timeout: 10_000,
    },
  );
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

/** Events of one watch with the time they came. */
function recorder(): {
  on: { dead(r: string): void; alive(): void };
  events: { kind: 'dead' | 'alive'; reason?: string; at: number }[];
  next(kind: 'dead' | 'alive', withinMs: number): Promise<{ reason?: string; afterMs: number }>;
} {
  const events: { kind: 'dead' | 'alive'; reason?: string; at: number }[] = [];
  let seen = 0;
  return {
    events,
    on: {
      dead: (reason) => void events.push({ kind: 'dead', reason, at: Date.now() }),
      alive: () => void events.push({ kind: 'alive', at: Date.now() }),
    },
    async next(kind, withinMs) {
      const start = Date.now();
      while (Date.now() - start < withinMs) {
        const e = events[seen];
        if (e !== undefined) {
          seen++;
          if (e.kind !== kind) throw new Error(`expected ${kind}, got ${e.kind} (${e.reason ?? ''})`);
          return { ...(e.reason === undefined ? {} : { reason: e.reason }), afterMs: e.at - start };
        }
        await new Promise((r) => setTimeout(r, 10));
      }
      throw new Error(`no ${kind} within ${withinMs} ms`);
    },
  };
}

function quiet(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

let prober: LivenessProber | undefined;

/** `ip -n NS -force -batch -`: -force goes on past lines that fail (teardowns delete what may not be there). */
function batch(ns: string, lines: string[]): void {
  execFileSync('ip', ['-n', ns, '-force', '-batch', '-'], {
    input: `${lines.join('\n')}\n`,
    stdio: ['pipe', 'ignore', 'pipe'],
    timeout: 10_000,
  });
}

/**
 * `held` answer on the peer (its lo), routed from A through the veth by `prefix`; the teardown
 * removes the route and those addresses, and `alsoRemove` (addresses a test may add later).
 */
function holdOnPeer(t: ExecutionContext, prefix: string, held: string[], alsoRemove: string[] = []): void {
  ip('-n', nsA, 'route', 'add', prefix, 'via', '10.203.0.2', 'dev', vethA);
  t.teardown(() => quietly(() => ip('-n', nsA, 'route', 'del', prefix)));
  batch(
    nsP,
    held.map((a) => `addr add ${a}/32 dev lo`),
  );
  t.teardown(() =>
    quietly(() =>
      batch(
        nsP,
        [...held, ...alsoRemove].map((a) => `addr del ${a}/32 dev lo`),
      ),
    ),
  );
}

test.before(() => {
  if (!isRoot) return;
  execFileSync(process.execPath, ['packaging/build-native.mjs'], { cwd: root });
  for (const ns of [nsA, nsP]) quietly(() => ip('netns', 'del', ns));
  ip('netns', 'add', nsA);
  ip('netns', 'add', nsP);
  ip('-n', nsA, 'link', 'add', vethA, 'type', 'veth', 'peer', 'name', vethP, 'netns', nsP);
  ip('-n', nsA, 'addr', 'add', '10.203.0.1/24', 'dev', vethA);
  ip('-n', nsA, 'addr', 'add', 'fd77:203::1/64', 'dev', vethA, 'nodad');
  ip('-n', nsP, 'addr', 'add', '10.203.0.2/24', 'dev', vethP);
  ip('-n', nsP, 'addr', 'add', '10.203.0.3/24', 'dev', vethP);
  ip('-n', nsP, 'addr', 'add', 'fd77:203::2/64', 'dev', vethP, 'nodad');
  for (const [ns, dev] of [
    [nsA, vethA],
    [nsP, vethP],
    [nsA, 'lo'],
    [nsP, 'lo'],
  ] as const) {
    ip('-n', ns, 'link', 'set', dev, 'up');
  }
});

test.afterEach.always(() => {
  prober?.close();
  prober = undefined;
});

test.after.always(() => {
  if (!isRoot) return;
  for (const ns of [nsA, nsP]) quietly(() => ip('netns', 'del', ns));
});

serial('IPv4: alive while the peer answers, dead when it stops, alive when it answers again', async (t) => {
  prober = icmpLivenessProber({ intervalMs, misses });
  const r = recorder();
  prober.watch(v4, r.on);
  await quiet(8 * intervalMs);
  t.deepEqual(r.events, [], 'no dead while the peer answers');

  echoIgnoreAll(true);
  t.teardown(() => quietly(() => echoIgnoreAll(false)));
  const dead = await r.next('dead', deadWithinMs);
  t.log(`dead ${dead.afterMs} ms after the peer stopped answering`);
  t.true(dead.afterMs >= (misses - 1) * intervalMs, `not before ${misses} misses: ${dead.afterMs} ms`);
  t.regex(
    dead.reason ?? '',
    new RegExp(
      `^no echo reply from 10\\.203\\.0\\.2 from 10\\.203\\.0\\.1 on ${vethA} in netns ${pathA} for 3 intervals of 100 ms$`,
    ),
  );

  echoIgnoreAll(false);
  await r.next('alive', 3 * intervalMs + 400);
  await quiet(3 * intervalMs);
  t.is(r.events.length, 2, 'dead once, alive once');
});

serial('IPv6 (nodad addresses): dead when the peer address goes, alive when it is back', async (t) => {
  prober = icmpLivenessProber({ intervalMs, misses });
  const r = recorder();
  prober.watch(v6, r.on);
  await quiet(6 * intervalMs);
  t.deepEqual(r.events, []);
  ip('-n', nsP, 'addr', 'del', 'fd77:203::2/64', 'dev', vethP);
  t.teardown(() => quietly(() => ip('-n', nsP, 'addr', 'add', 'fd77:203::2/64', 'dev', vethP, 'nodad')));
  const dead = await r.next('dead', deadWithinMs);
  t.regex(dead.reason ?? '', /^no echo reply from fd77:203::2 from fd77:203::1/);
  ip('-n', nsP, 'addr', 'add', 'fd77:203::2/64', 'dev', vethP, 'nodad');
  // Neighbour discovery may still hold the old failure for a moment.
  await r.next('alive', 3000);
  t.pass();
});

serial(
  'two watches share one socket and each hears only its own replies; the last stop closes it',
  async (t) => {
    prober = icmpLivenessProber({ intervalMs, misses });
    const before = openFds();
    const ra = recorder();
    const rb = recorder();
    const wa = prober.watch(v4, ra.on);
    const wb = prober.watch(v4b, rb.on);
    await quiet(5 * intervalMs);
    t.is(openFds(), before + 1, 'one raw socket for both');
    t.deepEqual([ra.events, rb.events], [[], []]);

    ip('-n', nsP, 'addr', 'del', '10.203.0.3/24', 'dev', vethP);
    t.teardown(() => quietly(() => ip('-n', nsP, 'addr', 'add', '10.203.0.3/24', 'dev', vethP)));
    const dead = await rb.next('dead', deadWithinMs);
    t.regex(dead.reason ?? '', /no echo reply from 10\.203\.0\.3 /);
    await quiet(3 * intervalMs);
    t.deepEqual(ra.events, [], 'the other watch still gets its replies');

    wa.stop();
    t.is(openFds(), before + 1, 'b still uses it');
    wb.stop();
    wb.stop();
    t.is(openFds(), before, 'closed with the last watch');
  },
);

serial('a netns given as /proc/PID/ns/net', async (t) => {
  prober = icmpLivenessProber({ intervalMs, misses });
  const sleeper: ChildProcess = spawn('ip', ['netns', 'exec', nsA, 'sleep', '30'], { stdio: 'ignore' });
  t.teardown(() => void sleeper.kill());
  const pid = sleeper.pid ?? 0;
  // ip netns exec execs sleep once it has entered the namespace.
  for (let i = 0; i < 100; i++) {
    const comm = execFileSync('cat', [`/proc/${pid}/comm`], { encoding: 'utf8' }).trim();
    if (comm === 'sleep') break;
    await quiet(20);
  }
  const r = recorder();
  prober.watch({ ...v4, netns: `/proc/${pid}/ns/net` }, r.on);
  await quiet(6 * intervalMs);
  t.deepEqual(r.events, []);
  // The namespace of an exited process is gone with it (ours was pinned by /var/run/netns, so the
  // path disappears but the netns does not): the watch must not go on pinging through a stale socket.
  sleeper.kill();
  const dead = await r.next('dead', deadWithinMs);
  t.regex(dead.reason ?? '', new RegExp(`netns /proc/${pid}/ns/net does not exist`));
});

serial(
  'an interface that never answers is dead; one that disappears makes sends fail, counted as misses',
  async (t) => {
    // A veth whose other end (same netns, no address) never answers ARP (no dummy driver here).
    ip('-n', nsA, 'link', 'add', silent, 'type', 'veth', 'peer', 'name', `${silent}q`);
    t.teardown(() => quietly(() => ip('-n', nsA, 'link', 'del', silent)));
    ip('-n', nsA, 'addr', 'add', '10.203.9.1/24', 'dev', silent);
    ip('-n', nsA, 'link', 'set', `${silent}q`, 'up');
    ip('-n', nsA, 'link', 'set', silent, 'up');
    prober = icmpLivenessProber({ intervalMs, misses });
    const r = recorder();
    const start = Date.now();
    prober.watch({ netns: pathA, ifName: silent, src: '10.203.9.1', dst: '10.203.9.2' }, r.on);
    const never = await r.next('dead', deadWithinMs + intervalMs);
    t.log(`dead ${Date.now() - start} ms after watch() of a target that never answered`);
    t.regex(never.reason ?? '', /^no echo reply from 10\.203\.9\.2 /);

    const r2 = recorder();
    const gone = `lvx${tag}`;
    prober.watch({ netns: pathA, ifName: gone, src: '10.203.0.1', dst: '10.203.0.2' }, r2.on);
    const dead = await r2.next('dead', deadWithinMs + intervalMs);
    t.regex(dead.reason ?? '', /the last echo could not be sent: ioctl SIOCGIFINDEX: No such device$/);
  },
);

serial("the agent's own netns (netns undefined): loopback answers, IPv4 and IPv6", async (t) => {
  prober = icmpLivenessProber({ intervalMs, misses });
  const r4 = recorder();
  const r6 = recorder();
  prober.watch({ netns: undefined, ifName: 'lo', src: '127.0.0.1', dst: '127.0.0.1' }, r4.on);
  prober.watch({ netns: undefined, ifName: 'lo', src: '::1', dst: '::1' }, r6.on);
  await quiet(6 * intervalMs);
  t.deepEqual([r4.events, r6.events], [[], []]);
});

serial('a netns path that does not exist: dead with a reason naming it', async (t) => {
  prober = icmpLivenessProber({ intervalMs, misses });
  const r = recorder();
  const missing = `/var/run/netns/nsmlv-missing-${tag}`;
  prober.watch({ ...v4, netns: missing }, r.on);
  const dead = await r.next('dead', 2 * intervalMs + 400);
  t.is(
    dead.reason,
    `cannot ping 10.203.0.2 from 10.203.0.1 on ${vethA} in netns ${missing}: netns ${missing} does not exist (any more)`,
  );
});

serial(
  'many watches on one socket: exactly the silent ones are dead, and each recovers or dies alone',
  async (t) => {
    // 40 targets the peer holds (on its lo, routed through the veth) and 10 nobody holds.
    const held = Array.from({ length: 40 }, (_, i) => `10.204.0.${i + 1}`);
    const unheld = Array.from({ length: 10 }, (_, i) => `10.204.0.${i + 101}`);
    holdOnPeer(t, '10.204.0.0/24', held, unheld);

    prober = icmpLivenessProber({ intervalMs, misses });
    const before = openFds();
    const recorders = new Map<string, ReturnType<typeof recorder>>();
    for (const dst of [...held, ...unheld]) {
      const r = recorder();
      recorders.set(dst, r);
      prober.watch({ netns: pathA, ifName: vethA, src: '10.203.0.1', dst }, r.on);
    }
    const eventsOf = (): Record<string, string[]> => {
      const out: Record<string, string[]> = {};
      for (const [dst, r] of recorders) if (r.events.length > 0) out[dst] = r.events.map((e) => e.kind);
      return out;
    };
    await quiet(deadWithinMs + 3 * intervalMs);
    t.is(openFds(), before + 1, 'one raw socket for all 50');
    t.deepEqual(eventsOf(), Object.fromEntries(unheld.map((a) => [a, ['dead']])), 'only the unheld are dead');
    t.regex(
      recorders.get('10.204.0.101')?.events[0]?.reason ?? '',
      /^no echo reply from 10\.204\.0\.101 from 10\.203\.0\.1 /,
    );

    // Five of the dead come up, five of the living go.
    const up = unheld.slice(0, 5);
    const down = held.slice(0, 5);
    batch(nsP, [...up.map((a) => `addr add ${a}/32 dev lo`), ...down.map((a) => `addr del ${a}/32 dev lo`)]);
    await quiet(deadWithinMs + 3 * intervalMs);
    t.deepEqual(
      eventsOf(),
      Object.fromEntries([
        ...up.map((a) => [a, ['dead', 'alive']]),
        ...unheld.slice(5).map((a) => [a, ['dead']]),
        ...down.map((a) => [a, ['dead']]),
      ]),
    );
  },
);

/**
 * A responder in the peer netns that answers every echo request itself (the kernel's answers are
 * off) the way `mode` says: `wrong-source` from another of the peer's addresses, `stale` with a seq
 * 20 rounds old, `late` with the previous round's seq (a late reply, which counts).
 */
const responder = String.raw`
import socket, struct, sys
src, mode = sys.argv[1], sys.argv[2]
rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
tx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
tx.bind((src, 0))
def csum(b):
    if len(b) % 2: b += b'\0'
    s = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    while s >> 16: s = (s & 0xffff) + (s >> 16)
    return ~s & 0xffff
print('ready', flush=True)
while True:
    pkt, addr = rx.recvfrom(2048)
    icmp = pkt[(pkt[0] & 15) * 4:]
    if len(icmp) < 8 or icmp[0] != 8: continue
    ident, seq = struct.unpack('!HH', icmp[4:8])
    seq = (seq - {'stale': 20, 'late': 1}.get(mode, 0)) & 0xffff
    body = struct.pack('!BBHHH', 0, 0, 0, ident, seq) + icmp[8:]
    tx.sendto(body[:2] + struct.pack('!H', csum(body)) + body[4:], (addr[0], 0))
`;

async function startResponder(src: string, mode: string): Promise<ChildProcess> {
  const child = spawn('ip', ['netns', 'exec', nsP, 'python3', '-c', responder, src, mode], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the responder did not start within 5 s')), 5000);
    child.once('exit', (code) => reject(new Error(`the responder exited (${code ?? 'signal'})`)));
    child.stdout.once('data', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return child;
}

for (const c of [
  { mode: 'wrong-source', src: '10.203.0.3', counts: false },
  { mode: 'stale', src: '10.203.0.2', counts: false },
  { mode: 'late', src: '10.203.0.2', counts: true },
]) {
  serial(
    `a reply with the right id from a responder in mode ${c.mode} ${c.counts ? 'counts' : 'does not count'}`,
    async (t) => {
      echoIgnoreAll(true);
      t.teardown(() => quietly(() => echoIgnoreAll(false)));
      const child = await startResponder(c.src, c.mode);
      t.teardown(() => void child.kill());
      prober = icmpLivenessProber({ intervalMs, misses });
      const r = recorder();
      prober.watch(v4, r.on);
      if (c.counts) {
        await quiet(deadWithinMs + 3 * intervalMs);
        t.deepEqual(r.events, [], 'answered, one round late');
      } else {
        const dead = await r.next('dead', deadWithinMs);
        t.regex(dead.reason ?? '', /^no echo reply from 10\.203\.0\.2 /);
      }
    },
  );
}

/** Echo requests the peer netns has received so far (its /proc/net/snmp, Icmp InEchos). */
function peerEchoes(): number {
  const snmp = execFileSync('ip', ['netns', 'exec', nsP, 'cat', '/proc/net/snmp'], {
    encoding: 'utf8',
    timeout: 10_000,
  });
  const [names, values] = snmp.split('\n').filter((l) => l.startsWith('Icmp:'));
  const at = names?.split(/\s+/).indexOf('InEchos') ?? -1;
  const n = Number(values?.split(/\s+/)[at]);
  if (at < 0 || !Number.isInteger(n)) throw new Error(`no Icmp InEchos in the peer's /proc/net/snmp`);
  return n;
}

serial(
  'a group of 40 behind one path: ~1 + 40/10 echoes a round; one silent member dies alone; a silent peer kills all in misses rounds; each comes back once',
  async (t) => {
    const held = Array.from({ length: 40 }, (_, i) => `10.205.0.${i + 1}`);
    holdOnPeer(t, '10.205.0.0/24', held);

    prober = icmpLivenessProber({ intervalMs, misses, sweepRounds: 10 });
    const recorders = new Map<string, ReturnType<typeof recorder>>();
    for (const dst of held) {
      const r = recorder();
      recorders.set(dst, r);
      prober.watch({ netns: pathA, ifName: vethA, src: '10.203.0.1', dst, group: 'agent:p' }, r.on);
    }
    const eventsOf = (): Record<string, string[]> => {
      const out: Record<string, string[]> = {};
      for (const [dst, r] of recorders) if (r.events.length > 0) out[dst] = r.events.map((e) => e.kind);
      return out;
    };
    const rec = (dst: string): ReturnType<typeof recorder> => {
      const r = recorders.get(dst);
      if (r === undefined) throw new Error(`no watch of ${dst}`);
      return r;
    };
    await quiet(5 * intervalMs);
    const [e0, t0] = [peerEchoes(), Date.now()];
    await quiet(20 * intervalMs);
    const [e1, t1] = [peerEchoes(), Date.now()];
    const perRound = (e1 - e0) / ((t1 - t0) / intervalMs);
    t.log(
      `${e1 - e0} echoes reached the peer in ${t1 - t0} ms: ${perRound.toFixed(1)} a round for 40 watches`,
    );
    t.true(perRound >= 3 && perRound <= 7, `about 1 + 40/10 a round, not 40: ${perRound.toFixed(1)}`);
    t.deepEqual(eventsOf(), {});

    // One member's far end goes (its address), the path and the others stay.
    const lone = held[17] ?? '';
    batch(nsP, [`addr del ${lone}/32 dev lo`]);
    const dead = await rec(lone).next('dead', (10 + misses + 1) * intervalMs + 600);
    t.log(`the lone member dead ${dead.afterMs} ms after its address went (sweep 10, misses 3)`);
    t.regex(dead.reason ?? '', /^no echo reply from 10\.205\.0\.18 /);
    await quiet(3 * intervalMs);
    t.deepEqual(eventsOf(), { [lone]: ['dead'] }, 'the others stay alive');

    // The whole path goes silent: every other member dead as fast as an ungrouped watch.
    echoIgnoreAll(true);
    t.teardown(() => quietly(() => echoIgnoreAll(false)));
    const blockedAt = Date.now();
    const others = held.filter((a) => a !== lone);
    await Promise.all(others.map((a) => rec(a).next('dead', deadWithinMs)));
    const last = Math.max(...others.map((a) => rec(a).events[0]?.at ?? Infinity)) - blockedAt;
    t.log(`all 39 dead ${last} ms after the peer stopped answering (ungrouped bound ${deadWithinMs} ms)`);
    t.true(last >= (misses - 1) * intervalMs, `not before ${misses} misses: ${last} ms`);

    echoIgnoreAll(false);
    batch(nsP, [`addr add ${lone}/32 dev lo`]);
    await Promise.all(held.map((a) => rec(a).next('alive', 3 * intervalMs + 1000)));
    await quiet(5 * intervalMs);
    t.deepEqual(eventsOf(), Object.fromEntries(held.map((a) => [a, ['dead', 'alive']])), 'alive once each');
  },
);
