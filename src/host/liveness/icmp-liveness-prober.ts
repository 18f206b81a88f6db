import { statSync } from 'node:fs';
import { AgentError, describe } from '../../errors/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import { parseIp } from '../../util/ip-prefix.js';
import type { IpFamily } from '../../util/ip-prefix.js';
import { systemClock } from '../clock.js';
import type { Clock, TimerHandle } from '../clock.js';
import { systemRandom } from '../random.js';
import type { Random } from '../random.js';
import { loadIcmpAddon } from '../socket-buffers/native-addon.js';
import type { IcmpAddon, NativeAddonOptions } from '../socket-buffers/native-addon.js';
import type { LivenessHandlers, LivenessProber, LivenessTarget, LivenessWatch } from './liveness-prober.js';

export interface IcmpProberOptions {
  /** Time between two echoes to one target, and the time a reply has to come back; default 1000. */
  readonly intervalMs?: number;
  /** Intervals in a row without a reply before `dead`; default 3. */
  readonly misses?: number;
  readonly clock?: Clock;
  readonly log?: Logger;
  /** The native ICMP functions (tests, or an addon the daemon already loaded); default: loaded on first watch. */
  readonly addon?: IcmpAddon;
  /** Where to load the addon from when `addon` is not given. */
  readonly native?: NativeAddonOptions;
  /** For the first echo id of each socket, so two agents in one netns start apart; default system. */
  readonly random?: Random;
}

/**
 * The real LivenessProber: ICMP echo requests through each target's interface, from its address,
 * in its netns, on raw sockets of the native addon (no process or thread per probe). One socket per
 * (netns, family), shared by every watch there and closed with its last watch; one timer for the
 * whole prober, armed only while something is watched. Needs root (CAP_NET_RAW, CAP_SYS_ADMIN for
 * setns); what fails shows up as `dead` with the reason, never as a throw from the timer.
 */
export function icmpLivenessProber(o: IcmpProberOptions = {}): LivenessProber {
  return new IcmpLivenessProber(o);
}

/** Replies to this many of a watch's latest echoes still count (a reply may come late). */
const keptSeqs = 8;

interface Probe {
  readonly target: LivenessTarget;
  readonly on: LivenessHandlers;
  readonly socket: Sock;
  readonly id: number;
  readonly dst: bigint;
  readonly where: string;
  /** Seqs of the latest echoes sent, oldest first. */
  readonly sent: number[];
  /** An echo went out (or failed to) since the last tick, so this tick judges it. */
  due: boolean;
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
  readonly probes: Map<number, Probe>;
  nextId: number;
  nextSeq: number;
}

class IcmpLivenessProber implements LivenessProber {
  readonly #intervalMs: number;
  readonly #misses: number;
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
    const family = checkTarget(target);
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
        nextId: Math.floor(this.#random.float() * 0x10000),
        nextSeq: Math.floor(this.#random.float() * 0x10000),
      };
      this.#sockets.set(key, socket);
    }
    const probe: Probe = {
      target,
      on,
      socket,
      id: freeId(socket),
      dst: parseIp(target.dst)?.value ?? -1n,
      where: `${target.dst} from ${target.src} on ${target.ifName}${target.netns === undefined ? '' : ` in netns ${target.netns}`}`,
      sent: [],
      due: false,
      answered: false,
      missed: 0,
      state: 'probing',
      lastSendError: undefined,
      sendErrorLogged: false,
      stopped: false,
    };
    socket.probes.set(probe.id, probe);
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
    for (const s of [...this.#sockets.values()]) for (const p of [...s.probes.values()]) this.#stop(p);
  }

  #stop(p: Probe): void {
    if (p.stopped) return;
    p.stopped = true;
    const s = p.socket;
    s.probes.delete(p.id);
    if (s.probes.size > 0) return;
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
    if (s.fd === undefined || this.#addon === undefined) return;
    try {
      this.#addon.icmpClose(s.fd);
    } catch (e: unknown) {
      this.#log.warn({ err: describe(e), netns: s.netns }, 'liveness: cannot close an ICMP socket');
    }
    s.fd = undefined;
    s.identity = undefined;
  }

  #tick(): void {
    this.#timer = undefined;
    if (this.#sockets.size === 0) return;
    try {
      const addon = this.#addon;
      if (addon !== undefined) {
        for (const s of this.#sockets.values()) this.#drain(addon, s);
      }
      // Handlers may stop or start watches: walk a snapshot and skip what was stopped meanwhile.
      for (const s of [...this.#sockets.values()]) {
        for (const p of [...s.probes.values()]) {
          if (p.stopped) continue;
          if (this.#addonError !== undefined) {
            this.#declareDead(p, `cannot ping ${p.where}: ${this.#addonError}`);
            continue;
          }
          if (addon === undefined) continue; // still loading
          this.#judge(p);
          this.#send(addon, p);
        }
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
    if (s.fd === undefined) return;
    let replies;
    try {
      replies = addon.icmpReceive(s.fd);
    } catch (e: unknown) {
      this.#log.warn({ err: describe(e), netns: s.netns }, 'liveness: cannot read ICMP replies; reopening');
      this.#closeSocket(s);
      return;
    }
    for (const r of replies) {
      const p = s.probes.get(r.id);
      if (p === undefined || !p.sent.includes(r.seq) || parseIp(r.from)?.value !== p.dst) continue;
      p.answered = true;
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

  /** Judges the echo sent last tick: answered resets the count, silence adds a miss. */
  #judge(p: Probe): void {
    const s = p.socket;
    if (s.fd === undefined && s.error !== undefined) {
      this.#declareDead(p, `cannot ping ${p.where}: ${s.error}`);
      return;
    }
    if (!p.due) return;
    if (p.answered) {
      p.missed = 0;
      p.lastSendError = undefined;
      const was = p.state;
      p.state = 'alive';
      if (was === 'dead') this.#call(p, () => p.on.alive?.());
      return;
    }
    p.missed++;
    if (p.missed >= this.#misses) {
      const last =
        p.lastSendError === undefined ? '' : `; the last echo could not be sent: ${p.lastSendError}`;
      this.#declareDead(
        p,
        `no echo reply from ${p.where} for ${p.missed} intervals of ${this.#intervalMs} ms${last}`,
      );
    }
  }

  #declareDead(p: Probe, reason: string): void {
    if (p.state === 'dead') return;
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

  #send(addon: IcmpAddon, p: Probe): void {
    if (p.stopped) return; // by its own handler, just now
    const s = p.socket;
    p.answered = false;
    if (s.fd === undefined) {
      p.due = false;
      return;
    }
    const seq = s.nextSeq;
    s.nextSeq = (s.nextSeq + 1) & 0xffff;
    p.sent.push(seq);
    if (p.sent.length > keptSeqs) p.sent.shift();
    p.due = true;
    try {
      addon.icmpSend(s.fd, p.target.ifName, p.target.src, p.target.dst, p.id, seq);
    } catch (e: unknown) {
      // Counts as a miss (judged next tick): the interface is gone or down, the address was removed.
      p.lastSendError = describe(e);
      if (!p.sendErrorLogged) {
        p.sendErrorLogged = true;
        this.#log.debug({ err: p.lastSendError, target: p.where }, 'liveness: cannot send an echo request');
      }
    }
  }
}

function checkTarget(t: LivenessTarget): IpFamily {
  const src = parseIp(t.src);
  const dst = parseIp(t.dst);
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
  return src.family;
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
