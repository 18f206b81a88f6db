import { statSync } from 'node:fs';
import { AgentError, describe } from '../../errors/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import type { IpFamily } from '../../util/ip-prefix.js';
import { systemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { systemRandom } from '../random.js';
import type { Random } from '../random.js';
import { loadIcmpAddon } from '../socket-buffers/native-addon.js';
import type { IcmpAddon, NativeAddonOptions } from '../socket-buffers/native-addon.js';
import {
  addressBytes,
  addressWords,
  echoRecordBytes,
  replyRecordWords,
  writeEchoRecord,
} from './echo-records.js';
import type { LivenessHandlers, LivenessProber, LivenessTarget, LivenessWatch } from './liveness-prober.js';

export interface IcmpProberOptions {
  /** Time between two echoes to one target, and the time a reply has to come back; default 1000. */
  readonly intervalMs?: number;
  /** Intervals in a row without a reply before `dead`; default 3. */
  readonly misses?: number;
  /**
   * Every member of a group (LivenessTarget.group) that answers is pinged at least once in this many
   * intervals; default 10. 1: every member every interval, as if ungrouped. 10 cuts a big group's
   * echoes tenfold (200 members: ~21 a round) while a member's own break (its route or allowed IPs,
   * its address at the far end) is still found within 10 + misses intervals, the scale on which the
   * forwarder's drift check (every 10 s) finds such state too; 20 would save only ~10 echoes more
   * a round and double that bound. A whole group's break is found as fast whatever the sweep.
   */
  readonly sweepRounds?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** The native ICMP functions (tests, or an addon the daemon already loaded); default: loaded on first watch. */
  readonly addon?: IcmpAddon;
  /** Where to load the addon from when `addon` is not given. */
  readonly native?: NativeAddonOptions;
  /**
   * For the first echo id of each socket and the first seq, so two agents in one netns start apart;
   * default system.
   */
  readonly random?: Random;
}

/**
 * The real LivenessProber: ICMP echo requests through each target's interface, from its address,
 * in its netns, on raw sockets of the native addon (no process or thread per probe). One socket per
 * (netns, family), shared by every watch there and closed with its last watch; one timer for the
 * whole prober, armed only while something is watched. Needs root (CAP_NET_RAW, CAP_SYS_ADMIN for
 * setns); what fails shows up as `dead` with the reason, never as a throw from the timer.
 *
 * Grouped targets (same group, netns and family) are pinged by need, not all every round: each
 * round carries the echoes of the group's representative (a member that answered), of every
 * member with a miss or that never answered, and of the members whose turn in the sweep it is
 * (1/sweepRounds of them). An echo costs more than its JS: the kernel's work for the tun device and
 * wireguard-go on both hosts, so 200 connections to one agent cost ~21 echoes a round, not 200.
 * Judgement per member: its own reply resets it; a pinged member that stayed silent gets a miss;
 * an unpinged one is vouched for by any reply from its group in the round, else gets a miss too
 * (and so is pinged next round). A blocked path is thus dead after `misses` rounds, as ungrouped.
 */
export function icmpLivenessProber(o: IcmpProberOptions = {}): LivenessProber {
  return new IcmpLivenessProber(o);
}

/** Replies to this many of the latest rounds still count (a reply may come late). */
const keptSeqs = 8;
/** Replies read per icmpReceive call, and calls per socket and tick at most. */
const replyBatch = 512;
const maxReceiveCalls = 16;
/**
 * Echoes one icmpSend call sends at most: a bigger round goes out in slices sliceGapMs apart, so
 * the queue of a tun device (500 packets; wireguard-go reads it) never gets a whole round at once.
 */
const sliceRecords = 256;
const sliceGapMs = 2;

/** Grouped watches of one socket (LivenessTarget.group). */
interface Group {
  readonly key: string;
  readonly members: Set<Probe>;
  /** Pinged every round while it answers; replaced when it misses or stops. */
  rep: Probe | undefined;
  /** The last round some member's reply came in, and the first member heard then. */
  heardIn: number;
  firstHeard: Probe | undefined;
  /** The sweep phase the next member gets (members are spread over the sweep's rounds). */
  nextPhase: number;
}

interface Probe {
  readonly target: LivenessTarget;
  readonly on: LivenessHandlers;
  readonly socket: Sock;
  /** Its group on the socket; undefined: pinged every round. */
  readonly group: Group | undefined;
  /** Its sweep turn: pinged in the rounds r with (r + phase) % sweepRounds === 0. */
  readonly phase: number;
  /** The last round its echo went out in (grouped watches only: the others go out every round). */
  pingedIn: number;
  readonly id: number;
  /** The target address as the words icmpReceive writes for a reply from it. */
  readonly d0: number;
  readonly d1: number;
  readonly d2: number;
  readonly d3: number;
  readonly where: string;
  /** Its record in the socket's table (moves when a record before the last is freed). */
  row: number;
  /** The first round that carried its echo: replies to older rounds are not its own. */
  readonly since: number;
  /** A reply to one of its echoes came since the last judgement. */
  answered: boolean;
  missed: number;
  state: 'probing' | 'alive' | 'dead';
  lastSendError: string | undefined;
  sendErrorLogged: boolean;
  stopped: boolean;
}

interface Sock {
  readonly key: string;
  readonly netns: string | undefined;
  readonly family: IpFamily;
  fd: number | undefined;
  /** dev:ino of the netns file when the socket was opened (a recreated netns gets a new socket). */
  identity: string | undefined;
  /** Why there is no socket, said to the watches as `dead`. */
  error: string | undefined;
  /** Live watches by echo id (replies are matched by it). */
  readonly probes: Map<number, Probe>;
  /** Live watches by record: rows[i] owns table record i; the table's first rows.length records are sent. */
  readonly rows: Probe[];
  /** icmpSend's records (echo-records.ts), written once per watch. */
  table: Uint8Array;
  /** Its groups by key, and how many of its watches are in one. */
  readonly groups: Map<string, Group>;
  grouped: number;
  /** A grouped round's picked records and their watches (grouped sockets only). */
  picked: Uint8Array | undefined;
  readonly pickedRows: Probe[];
  nextId: number;
  /** The last round this socket's echoes went out in (0: none yet), so a tick judges only what was sent. */
  sentIn: number;
  /** The timer of the round's next slice, while a big round is going out. */
  slices: TimerHandle | undefined;
}

class IcmpLivenessProber implements LivenessProber {
  readonly #intervalMs: number;
  readonly #misses: number;
  readonly #sweepRounds: number;
  readonly #clock: Clock;
  readonly #log: Logger;
  readonly #native: NativeAddonOptions;
  readonly #random: Random;
  #addon: IcmpAddon | undefined;
  #loading: Promise<void> | undefined;
  #addonError: string | undefined;
  readonly #sockets = new Map<string, Sock>();
  #timer: TimerHandle | undefined;
  #closed = false;
  /** Where icmpReceive writes replies; made on the first drain. */
  #replies: Uint32Array | undefined;
  /**
   * Rounds sent so far: each tick sends every watch's echo with the same seq, the round's. Seqs go
   * on across sockets, so an echo sent before a watch began (same id, an earlier socket) is never
   * taken for one of its own.
   */
  #round = 0;
  #seq: number | undefined;

  constructor(o: IcmpProberOptions) {
    this.#intervalMs = o.intervalMs ?? 1000;
    this.#misses = o.misses ?? 3;
    if (!Number.isInteger(this.#intervalMs) || this.#intervalMs < 10) {
      throw new AgentError('INVALID_ARGUMENT', `liveness interval ${this.#intervalMs} ms is too short`, {
        hint: 'use a whole number of milliseconds, at least 10',
      });
    }
    if (!Number.isInteger(this.#misses) || this.#misses < 1) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `liveness misses ${this.#misses} must be a whole number >= 1`,
        {
          hint: 'NSM declares a connection dead after a few lost pings, e.g. 3',
        },
      );
    }
    this.#sweepRounds = o.sweepRounds ?? 10;
    if (!Number.isInteger(this.#sweepRounds) || this.#sweepRounds < 1) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `liveness sweep of ${this.#sweepRounds} rounds must be a whole number >= 1`,
        { hint: 'use 1 to ping every target every interval, or e.g. 10' },
      );
    }
    this.#clock = o.clock ?? systemClock;
    this.#log = o.log ?? silentLogger();
    this.#native = o.native ?? {};
    this.#random = o.random ?? systemRandom;
    this.#addon = o.addon;
  }

  watch(target: LivenessTarget, on: LivenessHandlers): LivenessWatch {
    if (this.#closed) {
      throw new AgentError('FAILED_PRECONDITION', 'the liveness prober is closed', {
        hint: 'make a new prober; a closed one does not watch',
      });
    }
    const { family, src, dst } = checkTarget(target);
    const key = `${family}|${target.netns ?? ''}`;
    let socket = this.#sockets.get(key);
    if (socket === undefined) {
      socket = {
        key,
        netns: target.netns,
        family,
        fd: undefined,
        identity: undefined,
        error: undefined,
        probes: new Map(),
        rows: [],
        table: new Uint8Array(4 * echoRecordBytes),
        groups: new Map(),
        grouped: 0,
        picked: undefined,
        pickedRows: [],
        nextId: Math.floor(this.#random.float() * 0x10000),
        sentIn: 0,
        slices: undefined,
      };
      this.#sockets.set(key, socket);
    }
    const id = freeId(socket);
    const [d0, d1, d2, d3] = addressWords(dst);
    let group: Group | undefined;
    if (target.group !== undefined) {
      group = socket.groups.get(target.group);
      if (group === undefined) {
        group = {
          key: target.group,
          members: new Set(),
          rep: undefined,
          heardIn: 0,
          firstHeard: undefined,
          nextPhase: 0,
        };
        socket.groups.set(group.key, group);
      }
    }
    const phase = group === undefined ? 0 : group.nextPhase;
    if (group !== undefined) group.nextPhase = (group.nextPhase + 1) % this.#sweepRounds;
    const probe: Probe = {
      target,
      on,
      socket,
      group,
      phase,
      pingedIn: 0,
      id,
      d0,
      d1,
      d2,
      d3,
      where: `${target.dst} from ${target.src} on ${target.ifName}${target.netns === undefined ? '' : ` in netns ${target.netns}`}`,
      row: socket.rows.length,
      since: this.#round + 1,
      answered: false,
      missed: 0,
      state: 'probing',
      lastSendError: undefined,
      sendErrorLogged: false,
      stopped: false,
    };
    if ((probe.row + 1) * echoRecordBytes > socket.table.length) {
      const grown = new Uint8Array(socket.table.length * 2);
      grown.set(socket.table);
      socket.table = grown;
    }
    writeEchoRecord(socket.table, probe.row, { ifName: target.ifName, src, dst, id });
    socket.rows.push(probe);
    socket.probes.set(id, probe);
    if (group !== undefined) {
      group.members.add(probe);
      socket.grouped++;
    }
    if (this.#addon === undefined && this.#loading === undefined && this.#addonError === undefined) {
      this.#loading = loadIcmpAddon(this.#native).then(
        (a) => {
          this.#addon = a;
        },
        (e: unknown) => {
          this.#addonError = describe(e);
          this.#log.warn({ err: this.#addonError }, 'liveness: cannot load the native ICMP helper');
        },
      );
    }
    this.#timer ??= this.#clock.setTimer(this.#intervalMs, () => this.#tick());
    return { stop: () => this.#stop(probe) };
  }

  close(): void {
    this.#closed = true;
    for (const s of [...this.#sockets.values()]) for (const p of [...s.rows]) this.#stop(p);
  }

  #stop(p: Probe): void {
    if (p.stopped) return;
    p.stopped = true;
    const s = p.socket;
    s.probes.delete(p.id);
    const g = p.group;
    if (g !== undefined) {
      g.members.delete(p);
      s.grouped--;
      if (g.rep === p) g.rep = undefined;
      if (g.firstHeard === p) g.firstHeard = undefined;
      if (g.members.size === 0) s.groups.delete(g.key);
    }
    // The last record takes the freed one's place, so the sent records stay the first rows.length.
    const last = s.rows.length - 1;
    const moved = s.rows[last];
    if (moved !== undefined && moved !== p) {
      s.table.copyWithin(p.row * echoRecordBytes, last * echoRecordBytes, (last + 1) * echoRecordBytes);
      moved.row = p.row;
      s.rows[p.row] = moved;
    }
    s.rows.pop();
    if (s.rows.length > 0) return;
    this.#closeSocket(s);
    this.#sockets.delete(s.key);
    if (this.#sockets.size === 0) {
      this.#timer?.cancel();
      this.#timer = undefined;
      // A helper that failed to load may be there by the next watch (built meanwhile).
      this.#addonError = undefined;
    }
  }

  #closeSocket(s: Sock): void {
    s.slices?.cancel();
    s.slices = undefined;
    if (s.fd === undefined || this.#addon === undefined) return;
    try {
      this.#addon.icmpClose(s.fd);
    } catch (e: unknown) {
      this.#log.warn({ err: describe(e), netns: s.netns }, 'liveness: cannot close an ICMP socket');
    }
    s.fd = undefined;
    s.identity = undefined;
  }

  /**
   * One round: read every socket's replies, judge the last round per watch, send the next round.
   * A socket costs two addon calls a round whatever its number of watches; what runs per watch is
   * the judgement and, per reply, a Map lookup and a few number compares.
   */
  #tick(): void {
    this.#timer = undefined;
    if (this.#sockets.size === 0) return;
    try {
      const addon = this.#addon;
      if (addon !== undefined) {
        for (const s of this.#sockets.values()) this.#drain(addon, s);
      }
      // Handlers may stop or start watches, even close the prober: walk snapshots, skip what stopped.
      for (const s of [...this.#sockets.values()]) {
        if (this.#addonError !== undefined) {
          for (const p of s.rows.slice()) this.#declareDead(p, `cannot ping ${p.where}: ${this.#addonError}`);
        } else if (addon !== undefined) {
          this.#judge(s);
        }
      }
      // What the handlers started is in this round (since = round + 1): no handler runs from here on.
      if (addon !== undefined && this.#addonError === undefined && this.#sockets.size > 0) {
        this.#round++;
        this.#seq = ((this.#seq ?? Math.floor(this.#random.float() * 0x10000)) + 1) & 0xffff;
        for (const s of this.#sockets.values()) this.#send(addon, s, this.#seq);
      }
    } catch (e: unknown) {
      this.#log.error({ err: describe(e) }, 'liveness: probe round failed');
    }
    if (this.#sockets.size > 0 && !this.#closed) {
      this.#timer ??= this.#clock.setTimer(this.#intervalMs, () => this.#tick());
    }
  }

  /** Opens the socket when needed (again after its netns was replaced) and marks who answered. */
  #drain(addon: IcmpAddon, s: Sock): void {
    this.#ensureSocket(addon, s);
    const fd = s.fd;
    if (fd === undefined) return;
    const out = (this.#replies ??= new Uint32Array(replyBatch * replyRecordWords));
    const { probes } = s;
    const seq = this.#seq ?? 0;
    const round = this.#round;
    for (let call = 0; call < maxReceiveCalls; call++) {
      let n;
      try {
        n = addon.icmpReceive(fd, out);
      } catch (e: unknown) {
        this.#log.warn({ err: describe(e), netns: s.netns }, 'liveness: cannot read ICMP replies; reopening');
        this.#closeSocket(s);
        return;
      }
      if (typeof n !== 'number') {
        this.#addonError = `the native helper is an older build: ${staleHelperHint}`;
        this.#log.warn({ err: this.#addonError }, 'liveness: cannot use the native ICMP helper');
        return;
      }
      for (let i = 0, at = 0; i < n; i++, at += replyRecordWords) {
        const head = out[at] ?? 0;
        const p = probes.get(head & 0xffff);
        if (p === undefined) continue;
        // A reply counts for one of the last keptSeqs rounds that carried this watch's echo.
        const age = (seq - (head >>> 16)) & 0xffff;
        if (age >= keptSeqs || round - age < p.since) continue;
        if (out[at + 1] !== p.d0 || out[at + 2] !== p.d1 || out[at + 3] !== p.d2 || out[at + 4] !== p.d3) {
          continue;
        }
        p.answered = true;
      }
      if (n < replyBatch) return;
    }
  }

  #ensureSocket(addon: IcmpAddon, s: Sock): void {
    if (s.netns !== undefined) {
      const now = netnsIdentity(s.netns);
      if (s.fd !== undefined && now !== s.identity) {
        this.#log.info(
          { netns: s.netns },
          'liveness: the netns was removed or replaced; reopening its socket',
        );
        this.#closeSocket(s);
      }
      if (now === undefined) {
        this.#socketFailed(s, `netns ${s.netns} does not exist (any more)`);
        return;
      }
      if (s.fd === undefined) s.identity = now;
    }
    if (s.fd !== undefined) return;
    try {
      s.fd = addon.icmpOpen(s.netns ?? null, s.family);
      if (s.error !== undefined) this.#log.info({ netns: s.netns }, 'liveness: ICMP socket open again');
      s.error = undefined;
    } catch (e: unknown) {
      s.identity = undefined;
      const where = s.netns === undefined ? "the agent's netns" : `netns ${s.netns}`;
      this.#socketFailed(
        s,
        `cannot open an ICMPv${s.family === 4 ? '4' : '6'} socket in ${where}: ${describe(e)}`,
      );
    }
  }

  #socketFailed(s: Sock, why: string): void {
    if (s.error !== why) this.#log.warn({ netns: s.netns, err: why }, 'liveness: no ICMP socket');
    s.error = why;
  }

  /**
   * Judges the socket's last round per watch: answered resets the count, silence adds a miss; a
   * grouped watch that was not pinged is vouched for by any reply from its group.
   */
  #judge(s: Sock): void {
    if (s.fd === undefined && s.error !== undefined) {
      for (const p of s.rows.slice()) this.#declareDead(p, `cannot ping ${p.where}: ${s.error}`);
      return;
    }
    const round = this.#round;
    if (s.sentIn !== round || round === 0) {
      // Nothing of this socket went out last round: what was marked are late replies, judged never.
      for (const p of s.rows) p.answered = false;
      return;
    }
    const rows = s.rows.slice();
    const misses = this.#misses;
    if (s.grouped > 0) {
      for (let i = 0; i < rows.length; i++) {
        const p = rows[i];
        const g = p?.group;
        if (g === undefined || !p?.answered || g.heardIn === round) continue;
        g.heardIn = round;
        g.firstHeard = p;
      }
    }
    // Indexed, with locals: this runs per watch and second in an interpreter-only V8.
    for (let i = 0; i < rows.length; i++) {
      const p = rows[i];
      if (p === undefined || p.stopped) continue; // stopped by a handler, just now
      if (p.answered) {
        p.answered = false;
        p.missed = 0;
        p.lastSendError = undefined;
        if (p.state === 'alive') continue;
        const was = p.state;
        p.state = 'alive';
        if (was === 'dead') this.#call(p, () => p.on.alive?.());
        continue;
      }
      if (p.since > round) continue; // watched since that round
      // Not pinged (its group answered the round before, it had no miss): its group speaks for it.
      if (p.group !== undefined && p.pingedIn !== round && p.group.heardIn === round) continue;
      p.missed++;
      if (p.missed >= misses) {
        const last =
          p.lastSendError === undefined ? '' : `; the last echo could not be sent: ${p.lastSendError}`;
        this.#declareDead(
          p,
          `no echo reply from ${p.where} for ${p.missed} intervals of ${this.#intervalMs} ms${last}`,
        );
      }
    }
  }

  #declareDead(p: Probe, reason: string): void {
    if (p.state === 'dead' || p.stopped) return;
    p.state = 'dead';
    this.#call(p, () => p.on.dead(reason));
  }

  #call(p: Probe, fn: () => void): void {
    try {
      fn();
    } catch (e: unknown) {
      this.#log.error({ err: describe(e), target: p.where }, 'liveness: a handler threw');
    }
  }

  /**
   * Sends this round on one socket: one echo per ungrouped watch and per grouped watch picked
   * (#pick), all with the round's seq, in few calls.
   */
  #send(addon: IcmpAddon, s: Sock, seq: number): void {
    s.slices?.cancel(); // what is left of the last round: this one replaces it
    s.slices = undefined;
    if (s.fd === undefined || s.rows.length === 0) return;
    s.sentIn = this.#round;
    let table = s.table;
    let rows = s.rows;
    let count = rows.length;
    if (s.grouped > 0) {
      count = this.#pick(s);
      table = s.picked ?? table;
      rows = s.pickedRows;
      if (count === 0) return;
    }
    if (count <= sliceRecords) {
      this.#sendSlice(addon, s.fd, seq, table, rows, 0, count);
      return;
    }
    // The later slices go from copies: watches started or stopped meanwhile wait for the next round.
    table = table.slice(0, count * echoRecordBytes);
    rows = rows.slice(0, count);
    const next = (from: number): void => {
      s.slices = undefined;
      if (s.fd === undefined) return; // closed meanwhile
      const end = Math.min(from + sliceRecords, count);
      this.#sendSlice(addon, s.fd, seq, table, rows, from, end);
      if (end < count) s.slices = this.#clock.setTimer(sliceGapMs, () => next(end));
    };
    next(0);
  }

  /**
   * Picks this round's echoes of a socket with grouped watches into s.picked / s.pickedRows (in
   * table order) and returns how many: every ungrouped watch; of a group, its representative (a
   * member that answered; a new one is taken when it missed or stopped), every member with a miss or
   * not (yet, again) alive, and the members whose sweep turn it is. Stamps each with the round.
   */
  #pick(s: Sock): number {
    const round = this.#round;
    const sweep = this.#sweepRounds;
    for (const g of s.groups.values()) {
      if (g.rep !== undefined && healthy(g.rep)) continue;
      const heard = g.firstHeard;
      g.rep = heard !== undefined && g.heardIn === round - 1 && healthy(heard) ? heard : undefined;
    }
    const { rows } = s;
    if (s.picked === undefined || s.picked.length < s.table.length) {
      s.picked = new Uint8Array(s.table.length);
    }
    const out = s.picked;
    const picked = s.pickedRows;
    let n = 0;
    for (let i = 0; i < rows.length; i++) {
      const p = rows[i];
      if (p === undefined) continue;
      const g = p.group;
      if (g !== undefined && p.state === 'alive' && p.missed === 0) {
        // No member was heard last round (or it stopped): the first healthy one stands in.
        if (g.rep === undefined) g.rep = p;
        else if (g.rep !== p && (round + p.phase) % sweep !== 0) continue;
      }
      p.pingedIn = round;
      out.set(s.table.subarray(i * echoRecordBytes, (i + 1) * echoRecordBytes), n * echoRecordBytes);
      picked[n] = p;
      n++;
    }
    picked.length = n;
    return n;
  }

  /** Sends the echoes of records from … end-1 of `table`, whose watches are `rows`. */
  #sendSlice(
    addon: IcmpAddon,
    fd: number,
    seq: number,
    table: Uint8Array,
    rows: readonly Probe[],
    from: number,
    end: number,
  ): void {
    let failures;
    try {
      failures = addon.icmpSend(
        fd,
        from === 0 ? table : table.subarray(from * echoRecordBytes),
        end - from,
        seq,
      );
    } catch (e: unknown) {
      const why = describe(e);
      for (let i = from; i < end; i++) {
        const p = rows[i];
        if (p !== undefined) this.#sendFailed(p, why);
      }
      return;
    }
    if (failures === null) return;
    for (const f of failures) {
      const p = rows[from + f.index];
      if (p !== undefined) this.#sendFailed(p, f.message);
    }
  }

  /** Counts as a miss (judged next tick): the interface is gone or down, the address was removed. */
  #sendFailed(p: Probe, why: string): void {
    if (p.stopped) return;
    p.lastSendError = why;
    if (p.sendErrorLogged) return;
    p.sendErrorLogged = true;
    this.#log.debug({ err: why, target: p.where }, 'liveness: cannot send an echo request');
  }
}

/** A grouped watch that can stand for its group: alive, no miss, not stopped. */
function healthy(p: Probe): boolean {
  return !p.stopped && p.state === 'alive' && p.missed === 0;
}

const staleHelperHint = 'rebuild it (node packaging/build-native.mjs, or npm run build:binary)';

function checkTarget(t: LivenessTarget): { family: IpFamily; src: Uint8Array; dst: Uint8Array } {
  const src = addressBytes(t.src);
  const dst = addressBytes(t.dst);
  const bad = (what: string): AgentError =>
    new AgentError(
      'INVALID_ARGUMENT',
      `cannot watch the liveness of ${t.dst} from ${t.src} on ${t.ifName}: ${what}`,
      {
        hint: 'give the connection interface name, its own address and the peer address without prefix length',
      },
    );
  if (src === undefined || dst === undefined)
    throw bad('src and dst must be IP addresses without a prefix length');
  if (src.family !== dst.family) throw bad('src and dst are of different families');
  if (t.ifName === '' || t.ifName.length > 15 || /[\s/]/.test(t.ifName)) throw bad('not an interface name');
  if (t.netns !== undefined && !t.netns.startsWith('/')) throw bad('the netns must be an absolute path');
  return { family: src.family, src: src.bytes, dst: dst.bytes };
}

/** A 16-bit echo id no live watch of the socket has. */
function freeId(s: Sock): number {
  if (s.probes.size >= 0x10000) {
    throw new AgentError('RESOURCE_EXHAUSTED', 'too many liveness watches in one netns (65536)', {
      hint: 'stop the watches of closed connections',
    });
  }
  while (s.probes.has(s.nextId)) s.nextId = (s.nextId + 1) & 0xffff;
  const id = s.nextId;
  s.nextId = (s.nextId + 1) & 0xffff;
  return id;
}

/** dev:ino of a netns file (the namespace's identity); undefined when it is gone. */
function netnsIdentity(path: string): string | undefined {
  try {
    const st = statSync(path, { throwIfNoEntry: false });
    return st === undefined ? undefined : `${st.dev}:${st.ino}`;
  } catch {
    return undefined;
  }
}
