import { statSync, unwatchFile, watchFile } from 'node:fs';
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
 *
 * A round's work is proportional to what it sends and hears, not to the watches: the daemon runs V8
 * interpreter-only and a round comes once a second, cold, so every member visited and every object
 * made costs. A group keeps its members in sweep turns and its unhealthy members in a list; the
 * members of a group that answered and were not pinged are never visited (their group vouches for
 * them), and a round allocates nothing in steady state.
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
  /** Its members by sweep phase: turns[k] are pinged in the rounds r with (r + k) % sweepRounds === 0. */
  readonly turns: Probe[][];
  size: number;
  /** Members pinged every round: not (yet, again) alive, or with a miss. Healthy ones leave at #pick. */
  readonly needy: Probe[];
  /** Pinged every round while it answers; replaced when it misses or stops. */
  rep: Probe | undefined;
  /** The last round some member's reply came in, and the first member (in table order) heard then. */
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
  /** Its index in group.turns[phase], or in socket.solo when ungrouped. */
  at: number;
  /** In group.needy. */
  needy: boolean;
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
  /** A reply to one of its echoes came since the last judgement (it is then in socket.heard). */
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
  /**
   * The netns file is stat'ed again (#ensureSocket) only when this says so: set by a stat poll of
   * it (fs.watchFile, native: no JS per poll, where a statSync a round costs ~0.3 ms in the daemon's
   * interpreter-only V8) when it changed, and by a round the socket heard nothing of.
   */
  recheck: boolean;
  readonly onNetnsChange: () => void;
  /** Why there is no socket, said to the watches as `dead`. */
  error: string | undefined;
  /** Live watches by echo id (replies are matched by it). */
  readonly probes: Map<number, Probe>;
  /** Live watches by record: rows[i] owns table record i; the table's first rows.length records are sent. */
  readonly rows: Probe[];
  /**
   * icmpSend's records (echo-records.ts), written once per watch: `table` is the first half of
   * `store`, `picked` the second, where #pick copies a grouped round's records (copyWithin: no
   * object per record).
   */
  store: Uint8Array;
  table: Uint8Array;
  picked: Uint8Array;
  /** Its groups, by key and as a list; how many of its watches are in one; the others. */
  readonly groups: Map<string, Group>;
  readonly groupList: Group[];
  grouped: number;
  readonly solo: Probe[];
  /** The watches of the last round's echoes, in record order (judged next tick; kept until the next send). */
  readonly sent: Probe[];
  /** The watches a reply came for since the last judgement. */
  readonly heard: Probe[];
  nextId: number;
  /** The last round this socket's echoes went out in (0: none yet), so a tick judges only what was sent. */
  sentIn: number;
  /** The timer of the round's next slice while a big round is going out; its records, the next, how many, its seq. */
  slices: TimerHandle | undefined;
  sliceTable: Uint8Array | undefined;
  sliceFrom: number;
  sliceCount: number;
  sliceSeq: number;
  readonly nextSlice: () => void;
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
  /** The sockets by key and as a list (a tick walks a copy of the list: handlers may stop sockets). */
  readonly #sockets = new Map<string, Sock>();
  readonly #socketList: Sock[] = [];
  readonly #walk: Sock[] = [];
  /** Scratch lists of #judge: the silent groups of a socket, the members of one. */
  readonly #silentGroups: Group[] = [];
  readonly #silentMembers: Probe[] = [];
  #timer: TimerHandle | undefined;
  readonly #onTimer = (): void => this.#tick();
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
    const socket = this.#sockets.get(key) ?? this.#openSocket(key, target.netns, family);
    const id = freeId(socket);
    const [d0, d1, d2, d3] = addressWords(dst);
    const group = target.group === undefined ? undefined : this.#groupOf(socket, target.group);
    const phase = group === undefined ? 0 : group.nextPhase;
    if (group !== undefined) group.nextPhase = (group.nextPhase + 1) % this.#sweepRounds;
    const probe: Probe = {
      target,
      on,
      socket,
      group,
      phase,
      at: 0,
      needy: false,
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
    if ((probe.row + 1) * echoRecordBytes > socket.table.length) growTable(socket);
    writeEchoRecord(socket.table, probe.row, { ifName: target.ifName, src, dst, id });
    socket.rows.push(probe);
    socket.probes.set(id, probe);
    const list = group === undefined ? socket.solo : group.turns[phase];
    if (list !== undefined) {
      probe.at = list.length;
      list.push(probe);
    }
    if (group !== undefined) {
      group.size++;
      socket.grouped++;
      this.#needs(probe); // pinged every round until it answers
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
    this.#timer ??= this.#clock.setTimer(this.#intervalMs, this.#onTimer);
    return { stop: () => this.#stop(probe) };
  }

  #openSocket(key: string, netns: string | undefined, family: IpFamily): Sock {
    const records = 4;
    const store = new Uint8Array(2 * records * echoRecordBytes);
    const s: Sock = {
      key,
      netns,
      family,
      fd: undefined,
      identity: undefined,
      recheck: true,
      onNetnsChange: () => {
        s.recheck = true;
      },
      error: undefined,
      probes: new Map(),
      rows: [],
      store,
      table: store.subarray(0, records * echoRecordBytes),
      picked: store.subarray(records * echoRecordBytes),
      groups: new Map(),
      groupList: [],
      grouped: 0,
      solo: [],
      sent: [],
      heard: [],
      nextId: Math.floor(this.#random.float() * 0x10000),
      sentIn: 0,
      slices: undefined,
      sliceTable: undefined,
      sliceFrom: 0,
      sliceCount: 0,
      sliceSeq: 0,
      nextSlice: () => this.#sendNextSlice(s),
    };
    this.#sockets.set(key, s);
    this.#socketList.push(s);
    return s;
  }

  #groupOf(s: Sock, key: string): Group {
    let g = s.groups.get(key);
    if (g === undefined) {
      g = {
        key,
        turns: Array.from({ length: this.#sweepRounds }, (): Probe[] => []),
        size: 0,
        needy: [],
        rep: undefined,
        heardIn: 0,
        firstHeard: undefined,
        nextPhase: 0,
      };
      s.groups.set(key, g);
      s.groupList.push(g);
    }
    return g;
  }

  close(): void {
    this.#closed = true;
    for (const s of [...this.#socketList]) for (const p of [...s.rows]) this.#stop(p);
  }

  #stop(p: Probe): void {
    if (p.stopped) return;
    p.stopped = true;
    const s = p.socket;
    s.probes.delete(p.id);
    const g = p.group;
    if (g === undefined) {
      removeFrom(s.solo, p);
    } else {
      removeFrom(g.turns[p.phase], p);
      g.size--;
      s.grouped--;
      if (g.rep === p) g.rep = undefined;
      if (g.firstHeard === p) g.firstHeard = undefined;
      // g.needy drops stopped members at the next #pick.
      if (g.size === 0) {
        s.groups.delete(g.key);
        s.groupList.splice(s.groupList.indexOf(g), 1);
      }
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
    this.#socketList.splice(this.#socketList.indexOf(s), 1);
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
    s.sliceTable = undefined;
    if (s.fd === undefined || this.#addon === undefined) return;
    try {
      this.#addon.icmpClose(s.fd);
    } catch (e: unknown) {
      this.#log.warn({ err: describe(e), netns: s.netns }, 'liveness: cannot close an ICMP socket');
    }
    if (s.netns !== undefined) unwatchFile(s.netns, s.onNetnsChange);
    s.fd = undefined;
    s.identity = undefined;
  }

  /**
   * One round: read every socket's replies, judge the last round, send the next round. A socket
   * costs two addon calls a round whatever its number of watches; what runs per watch is the
   * judgement of those pinged or heard, and per reply a Map lookup and a few number compares.
   */
  #tick(): void {
    this.#timer = undefined;
    const walk = this.#walk;
    if (this.#socketList.length === 0) return;
    try {
      const addon = this.#addon;
      // Handlers may stop or start watches, even close the prober: walk a copy, skip what stopped.
      for (let i = 0; i < this.#socketList.length; i++) walk[i] = this.#socketList[i] as Sock;
      walk.length = this.#socketList.length;
      if (addon !== undefined) for (let i = 0; i < walk.length; i++) this.#drain(addon, walk[i] as Sock);
      for (let i = 0; i < walk.length; i++) {
        const s = walk[i] as Sock;
        if (this.#addonError !== undefined) {
          for (const p of s.rows.slice()) this.#declareDead(p, `cannot ping ${p.where}: ${this.#addonError}`);
        } else if (addon !== undefined) {
          this.#judge(s);
        }
      }
      // What the handlers started is in this round (since = round + 1): no handler runs from here on.
      if (addon !== undefined && this.#addonError === undefined && this.#socketList.length > 0) {
        this.#round++;
        this.#seq = ((this.#seq ?? Math.floor(this.#random.float() * 0x10000)) + 1) & 0xffff;
        for (let i = 0; i < this.#socketList.length; i++) {
          this.#send(addon, this.#socketList[i] as Sock, this.#seq);
        }
      }
    } catch (e: unknown) {
      this.#log.error({ err: describe(e) }, 'liveness: probe round failed');
    }
    walk.length = 0;
    if (this.#sockets.size > 0 && !this.#closed) {
      this.#timer ??= this.#clock.setTimer(this.#intervalMs, this.#onTimer);
    }
  }

  /** Opens the socket when needed (again after its netns was replaced) and marks who answered. */
  #drain(addon: IcmpAddon, s: Sock): void {
    this.#ensureSocket(addon, s);
    const fd = s.fd;
    if (fd === undefined) return;
    const out = (this.#replies ??= new Uint32Array(replyBatch * replyRecordWords));
    const { probes, heard } = s;
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
        if (p === undefined || p.answered) continue;
        // A reply counts for one of the last keptSeqs rounds that carried this watch's echo.
        const age = (seq - (head >>> 16)) & 0xffff;
        if (age >= keptSeqs || round - age < p.since) continue;
        if (out[at + 1] !== p.d0 || out[at + 2] !== p.d1 || out[at + 3] !== p.d2 || out[at + 4] !== p.d3) {
          continue;
        }
        p.answered = true;
        heard.push(p);
      }
      if (n < replyBatch) return;
    }
  }

  #ensureSocket(addon: IcmpAddon, s: Sock): void {
    if (s.netns !== undefined && (s.fd === undefined || s.recheck)) {
      s.recheck = false;
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
      if (s.netns !== undefined) {
        watchFile(s.netns, { persistent: false, interval: this.#intervalMs }, s.onNetnsChange);
      }
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
   * Judges the socket's last round: each watch it pinged or heard (answered resets the count,
   * silence adds a miss), then the groups none of whose members answered: their unpinged members
   * get a miss too. The unpinged members of a group that answered are not visited: it vouches for
   * them.
   */
  #judge(s: Sock): void {
    const { heard, sent } = s;
    if (s.fd === undefined && s.error !== undefined) {
      for (const p of heard) p.answered = false;
      heard.length = 0;
      for (const p of s.rows.slice()) this.#declareDead(p, `cannot ping ${p.where}: ${s.error}`);
      return;
    }
    const round = this.#round;
    if (s.sentIn !== round || round === 0) {
      // Nothing of this socket went out last round: what was marked are late replies, judged never.
      for (const p of heard) p.answered = false;
      heard.length = 0;
      return;
    }
    // Which groups were heard, and their first member in table order (the next representative).
    // Nothing came back: the netns may have been replaced in a way the poll missed.
    if (heard.length === 0 && sent.length > 0) s.recheck = true;
    for (let i = 0; i < heard.length; i++) {
      const p = heard[i] as Probe;
      const g = p.group;
      if (g === undefined || p.stopped) continue;
      if (g.heardIn !== round || g.firstHeard === undefined || p.row < g.firstHeard.row) {
        g.heardIn = round;
        g.firstHeard = p;
      }
    }
    // Handlers run from here on: walk lists that only #pick, #drain and this method change.
    for (let i = 0; i < sent.length; i++) this.#judgeOne(sent[i] as Probe, round);
    // A late reply to an earlier round's echo of a watch this round did not ping.
    for (let i = 0; i < heard.length; i++) {
      const p = heard[i] as Probe;
      if (p.answered) this.#judgeOne(p, round);
    }
    heard.length = 0;
    if (s.grouped === 0) return;
    const silent = this.#silentGroups;
    for (let i = 0; i < s.groupList.length; i++) {
      const g = s.groupList[i] as Group;
      if (g.heardIn !== round) silent.push(g);
    }
    for (let i = 0; i < silent.length; i++) this.#judgeSilent(silent[i] as Group, round);
    silent.length = 0;
  }

  #judgeOne(p: Probe, round: number): void {
    if (p.stopped) return; // stopped by a handler, just now
    if (p.answered) {
      p.answered = false;
      p.missed = 0;
      p.lastSendError = undefined;
      if (p.state === 'alive') return;
      const was = p.state;
      p.state = 'alive';
      if (was === 'dead') this.#call(p, () => p.on.alive?.());
      return;
    }
    if (p.since > round) return; // watched since that round
    this.#miss(p);
  }

  /** No member of `g` answered last round: those it did not ping get a miss too. */
  #judgeSilent(g: Group, round: number): void {
    const members = this.#silentMembers;
    for (let k = 0; k < g.turns.length; k++) {
      const turn = g.turns[k] as Probe[];
      for (let i = 0; i < turn.length; i++) {
        const p = turn[i] as Probe;
        if (p.pingedIn !== round && p.since <= round) members.push(p);
      }
    }
    for (let i = 0; i < members.length; i++) {
      const p = members[i] as Probe;
      if (!p.stopped) this.#miss(p);
    }
    members.length = 0;
  }

  #miss(p: Probe): void {
    p.missed++;
    this.#needs(p);
    if (p.missed >= this.#misses) {
      const last =
        p.lastSendError === undefined ? '' : `; the last echo could not be sent: ${p.lastSendError}`;
      this.#declareDead(
        p,
        `no echo reply from ${p.where} for ${p.missed} intervals of ${this.#intervalMs} ms${last}`,
      );
    }
  }

  /** A grouped watch that is not healthy is pinged every round until it is (#pick). */
  #needs(p: Probe): void {
    const g = p.group;
    if (g === undefined || p.needy) return;
    p.needy = true;
    g.needy.push(p);
  }

  #declareDead(p: Probe, reason: string): void {
    if (p.state === 'dead' || p.stopped) return;
    p.state = 'dead';
    this.#needs(p);
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
   * (#pick), all with the round's seq, in few calls. s.sent keeps the round's watches for #judge.
   */
  #send(addon: IcmpAddon, s: Sock, seq: number): void {
    s.slices?.cancel(); // what is left of the last round: this one replaces it
    s.slices = undefined;
    s.sliceTable = undefined;
    const { rows, sent } = s;
    if (s.fd === undefined || rows.length === 0) {
      sent.length = 0;
      return;
    }
    s.sentIn = this.#round;
    let table = s.table;
    let count = rows.length;
    if (s.grouped > 0) {
      count = this.#pick(s);
      table = s.picked;
      if (count === 0) return;
    } else {
      for (let i = 0; i < count; i++) sent[i] = rows[i] as Probe;
      sent.length = count;
    }
    if (count <= sliceRecords) {
      this.#sendSlice(addon, s.fd, seq, table, sent, 0, count);
      return;
    }
    // The later slices go from a copy: watches started or stopped meanwhile wait for the next round.
    s.sliceTable = table.slice(0, count * echoRecordBytes);
    s.sliceFrom = 0;
    s.sliceCount = count;
    s.sliceSeq = seq;
    this.#sendNextSlice(s);
  }

  #sendNextSlice(s: Sock): void {
    s.slices = undefined;
    const { fd, sliceTable } = s;
    if (fd === undefined || sliceTable === undefined || this.#addon === undefined) return; // closed meanwhile
    const from = s.sliceFrom;
    const end = Math.min(from + sliceRecords, s.sliceCount);
    this.#sendSlice(this.#addon, fd, s.sliceSeq, sliceTable, s.sent, from, end);
    s.sliceFrom = end;
    if (end < s.sliceCount) s.slices = this.#clock.setTimer(sliceGapMs, s.nextSlice);
    else s.sliceTable = undefined;
  }

  /**
   * Picks this round's echoes of a socket with grouped watches into s.picked / s.sent and returns
   * how many: every ungrouped watch; of a group, its representative (a member that answered; a new
   * one is taken when it missed or stopped), every member with a miss or not (yet, again) alive,
   * and the members whose sweep turn it is. Stamps each with the round.
   */
  #pick(s: Sock): number {
    const round = this.#round;
    const sweep = this.#sweepRounds;
    s.sent.length = 0;
    for (let i = 0; i < s.solo.length; i++) take(s, s.solo[i] as Probe, round);
    const turn = (sweep - (round % sweep)) % sweep;
    for (let gi = 0; gi < s.groupList.length; gi++) {
      const g = s.groupList[gi] as Group;
      if (g.rep === undefined || !healthy(g.rep)) {
        const heard = g.firstHeard;
        // The first member heard last round; else (none was, or it stopped) the first healthy one.
        g.rep = heard !== undefined && g.heardIn === round - 1 && healthy(heard) ? heard : firstHealthy(g);
      }
      if (g.rep !== undefined) take(s, g.rep, round);
      const { needy } = g;
      let kept = 0;
      for (let i = 0; i < needy.length; i++) {
        const p = needy[i] as Probe;
        if (p.stopped || healthy(p)) {
          p.needy = false;
          continue;
        }
        needy[kept++] = p;
        take(s, p, round);
      }
      needy.length = kept;
      const due = g.turns[turn] as Probe[];
      for (let i = 0; i < due.length; i++) take(s, due[i] as Probe, round);
    }
    return s.sent.length;
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

/** Adds `p`'s echo to the round #pick is making (once): its record into s.picked, itself to s.sent. */
function take(s: Sock, p: Probe, round: number): void {
  if (p.pingedIn === round) return;
  p.pingedIn = round;
  const at = p.row * echoRecordBytes;
  s.store.copyWithin(s.table.length + s.sent.length * echoRecordBytes, at, at + echoRecordBytes);
  s.sent.push(p);
}

/** A grouped watch that can stand for its group: alive, no miss, not stopped. */
function healthy(p: Probe): boolean {
  return !p.stopped && p.state === 'alive' && p.missed === 0;
}

function firstHealthy(g: Group): Probe | undefined {
  for (const turn of g.turns) for (const p of turn) if (healthy(p)) return p;
  return undefined;
}

/** Removes `p` from the list it is at `p.at` of; the last one takes its place. */
function removeFrom(list: Probe[] | undefined, p: Probe): void {
  const last = list?.pop();
  if (list === undefined || last === undefined || last === p) return;
  list[p.at] = last;
  last.at = p.at;
}

/** Doubles a socket's records (the table and the picked ones: store is both). */
function growTable(s: Sock): void {
  const records = (2 * s.table.length) / echoRecordBytes;
  const store = new Uint8Array(2 * records * echoRecordBytes);
  store.set(s.table);
  s.store = store;
  s.table = store.subarray(0, records * echoRecordBytes);
  s.picked = store.subarray(records * echoRecordBytes);
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
