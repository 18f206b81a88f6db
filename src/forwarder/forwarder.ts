import { SerialExecutor } from '../chain/core/index.js';
import { AgentError, describe } from '../errors/index.js';
import type { CommandRunner } from '../host/index.js';
import type { DeviceState, WireGuard } from '../host/wireguard/index.js';
import { silentLogger } from '../log/index.js';
import type { Logger } from '../log/index.js';
import { Contributors, restrictTo } from './contributors.js';
import { checkChangedEntries, checkDesiredState, emptyDesiredState, netnsKey } from './desired-state.js';
import type { DesiredEntry, DesiredState, DeviceSpec } from './desired-state.js';
import { deviceKey, netnsTextKey, parseNetnsView, readDevices, readNetnsText } from './host-state.js';
import type { HostState, NetnsText, NetnsView } from './host-state.js';
import { hostTarget, workloadTarget } from './netns-target.js';
import type { NetnsTarget } from './netns-target.js';
import { describeOp } from './ops.js';
import type { ForwarderOp, Where } from './ops.js';
import { checkOwnerMark, defaultOwnerMark } from './owner-mark.js';
import type { OwnerMark } from './owner-mark.js';
import { assumedHost, plan, sameTarget } from './plan.js';
import { readRecord, recordOf, sameRecord, unionRecord, writeRecord } from './state-record.js';
import type { StateRecord } from './state-record.js';

export interface ForwarderOptions {
  readonly runner: CommandRunner;
  readonly wireguard: WireGuard;
  /** The agent's state dir; the record is `<stateDir>/forwarder/state.json`. */
  readonly stateDir: string;
  readonly mark?: OwnerMark;
  /** The named netns that stands for the host (test beds); absent: the agent's own netns. */
  readonly netns?: string;
  readonly log?: Logger;
  /**
   * Called after each step of an apply (record written, each op, final record), awaited. Tests use it
   * as a crash point; the daemon leaves it out.
   */
  readonly onStep?: (step: ApplyStep) => void | Promise<void>;
}

export interface ApplyStep {
  /** 0: intent record written; 1..n: ops; n + 1: final record written. */
  readonly index: number;
  readonly name: string;
}

export interface ApplyResult {
  /** The ops run; empty when the host already was as desired. */
  readonly ops: readonly ForwarderOp[];
  readonly ms: number;
}

/**
 * The data plane, declaratively (DESIGN.md §4): given the whole desired state it reads the host,
 * plans the difference and applies it in a safe order, one apply at a time. It owns only what
 * carries its mark (owner-mark.ts) and its record (state-record.ts); `adopt()` on start keeps what
 * the desired state claims and removes the rest of what it owns — nothing else is touched.
 *
 * Chain elements change their own entries with setEntry(); each call is an apply of the whole state.
 * After an apply that succeeded, the next setEntry() plans from the host as that apply left it
 * instead of reading it (the forwarder made every change itself), and over only the entries with a
 * say in what the changed ones touch (contributors.ts), so its cost does not grow with the other
 * connections; reapply() — drift repair — and adopt() always read the host, and so does a
 * setEntry() whose step fails or that follows a failure. A read that is the same as the last one
 * that needed no change is not parsed or planned again. The state record is written before any
 * change either way.
 */
export class Forwarder {
  readonly #o: ForwarderOptions;
  readonly #mark: OwnerMark;
  readonly #log: Logger;
  readonly #queue = new SerialExecutor();
  /** Entry changes waiting for the next apply (not yet started); new sets join it. */
  #pending: { changes: Map<string, DesiredEntry | undefined>; result: Promise<ApplyResult> } | undefined;
  readonly #host: NetnsTarget;
  #desired: DesiredState = emptyDesiredState;
  #record: StateRecord | undefined;
  /**
   * The state of the last apply that succeeded; undefined after a failure or before the first. The
   * host is then as that apply left it, unless something changed it behind the forwarder's back:
   * setEntry() plans from it without reading the host (see assumedHost), and reads the host when an
   * op fails; reapply() (drift repair), adopt(), apply() and setDevice() always read it.
   */
  #applied: DesiredState | undefined;
  /** Endpoints this process set, per peer key (see PlanInput.declaredEndpoints). */
  readonly #declared = new Map<string, string>();
  /** Counts the changes to #declared (a plan input). */
  #declaredVersion = 0;
  /**
   * The last apply that read the host and had nothing to do, with what it read: a read that gives
   * the same (and the same inputs otherwise) plans nothing again, so drift repair with nothing
   * changed skips parsing and planning. Cleared by any apply that does not end that way.
   */
  #quiet: QuietRead | undefined;
  /** Which entries of #applied have a say in which host object: what a setEntries() plans over. */
  readonly #contributors: Contributors;

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.#mark = checkOwnerMark(options.mark ?? defaultOwnerMark);
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'forwarder' });
    this.#host = hostTarget(options.runner, options.netns);
    this.#contributors = new Contributors(this.#mark);
  }

  /** The state last asked for (whether or not its apply succeeded). */
  get desired(): DesiredState {
    return this.#desired;
  }

  get mark(): OwnerMark {
    return this.#mark;
  }

  /**
   * On start: reads the record left by the previous run (also after a crash), then applies
   * `desired`: what it still claims is kept as it is, everything else of ours is removed.
   */
  adopt(desired: DesiredState): Promise<ApplyResult> {
    return this.#queue.run(async () => {
      this.#record = await readRecord(this.#o.stateDir, this.#mark);
      return this.#apply(desired);
    });
  }

  /** Makes the host match `desired`; a second call with the same state runs no command that changes anything. */
  apply(desired: DesiredState): Promise<ApplyResult> {
    return this.#queue.run(() => this.#apply(desired));
  }

  /**
   * Applies the desired state as it is when this apply's turn comes (not as it was when it was
   * asked for): drift repair must never put back an older state over entries set meanwhile.
   */
  reapply(): Promise<ApplyResult> {
    return this.#queue.run(() => this.#apply(this.#desired));
  }

  /** The entry under `key`, as last set (an apply it waits for included). */
  entry(key: string): DesiredEntry | undefined {
    const pending = this.#pending?.changes;
    if (pending?.has(key)) return pending.get(key);
    return this.#desired.entries[key];
  }

  /**
   * Sets (or with undefined removes) one entry and applies the resulting state. Group commit: sets
   * that arrive while an apply runs join the next one, so connections set up at the same time share
   * one plan and one batch of commands instead of queueing an apply each. A failed apply
   * fails every set that joined it (each caller undoes its own entry, as after any failure).
   */
  setEntry(key: string, entry: DesiredEntry | undefined): Promise<ApplyResult> {
    return this.setEntries(new Map([[key, entry]]));
  }

  /** Sets (undefined: removes) several entries in one apply, as setEntry does one. */
  setEntries(entries: ReadonlyMap<string, DesiredEntry | undefined>): Promise<ApplyResult> {
    const waiting = this.#pending;
    if (waiting) {
      for (const [k, e] of entries) waiting.changes.set(k, e);
      return waiting.result;
    }
    const changes = new Map(entries);
    const result = this.#queue.run(() => {
      if (this.#pending?.changes === changes) this.#pending = undefined;
      const entries: Record<string, DesiredEntry> = { ...this.#desired.entries };
      for (const [k, e] of changes) {
        if (e === undefined) Reflect.deleteProperty(entries, k);
        else entries[k] = e;
      }
      const desired: DesiredState = { ...this.#desired, entries };
      const applied = this.#applied;
      if (applied === undefined || applied !== this.#desired) return this.#apply(desired);
      // The rest was checked with the last apply.
      checkChangedEntries(desired, [...changes.keys()], (slot) =>
        this.#contributors.holders(applied, `i ${slot}`),
      );
      // Only the entries with a say in what the changed ones touch (see Contributors): the rest of
      // the host stays as the last apply left it, so the plan of these is the plan of the whole.
      const keys = this.#contributors.advance(applied, desired, changes.keys());
      const from = restrictTo(applied, keys);
      const to = restrictTo(desired, keys);
      // An entry that asks for nothing the host does not already have from the last apply (the
      // service address a second connection shares) needs no read and no command; drift repair
      // (reapply) still reads the host.
      if (sameTarget(from, to, this.#mark)) {
        this.#desired = desired;
        this.#applied = desired;
        return Promise.resolve({ ops: [], ms: 0 });
      }
      const sameNetns = [...changes.keys()].every(
        (k) => applied.entries[k]?.kind !== 'netns' && entries[k]?.kind !== 'netns',
      );
      return this.#apply(desired, { from, to, ...(sameNetns ? { record: this.#record } : {}) });
    });
    this.#pending = { changes, result };
    return result;
  }

  /** Sets the device (key, port, MTU) and applies, keeping the entries. */
  setDevice(device: DeviceSpec | undefined): Promise<ApplyResult> {
    return this.#queue.run(() =>
      this.#apply({ ...(device === undefined ? {} : { device }), entries: this.#desired.entries }),
    );
  }

  /**
   * One apply. With `assumed` (the last successful apply's state and `desired`, both restricted to
   * the entries that matter for the change) it plans from the host as that apply left it instead of
   * reading the host; when an op then fails, the host was not as assumed (something removed a link,
   * a workload netns went away, wireguard-go died): it reads the host and plans again from what is
   * really there.
   */
  async #apply(desired: DesiredState, assumed?: Assumed): Promise<ApplyResult> {
    const started = performance.now();
    // A state applied before was checked then (drift repair applies the same state every 10 s).
    if (assumed === undefined && desired !== this.#applied) checkDesiredState(desired);
    this.#desired = desired;
    this.#applied = undefined;
    const quiet = this.#quiet;
    this.#quiet = undefined;
    const before = this.#record ?? (await readRecord(this.#o.stateDir, this.#mark));
    const after = assumed?.record ?? recordOf(desired, this.#mark);
    const intent = unionRecord(before, after);
    let step = 0;
    if (!sameRecord(intent, before)) await writeRecord(this.#o.stateDir, intent);
    this.#record = intent;
    await this.#step(step++, 'record-intent');

    const read = assumed === undefined ? await this.#read(intent) : undefined;
    const readKeys = read === undefined ? undefined : keysOf(read);
    const unchanged =
      readKeys !== undefined &&
      quiet !== undefined &&
      quiet.desired === desired &&
      quiet.declaredVersion === this.#declaredVersion &&
      sameRecord(quiet.record, intent) &&
      sameKeys(quiet.keys, readKeys);
    const ops = unchanged
      ? []
      : plan({
          current:
            assumed === undefined
              ? hostStateOf(read as HostRead, this.#mark.proto)
              : assumedHost(assumed.from, this.#mark),
          desired: assumed?.to ?? desired,
          mark: this.#mark,
          ownedDevices: intent.devices,
          declaredEndpoints: Object.fromEntries(this.#declared),
          ...(assumed === undefined ? {} : { whole: desired }),
        });
    // Batches of one stage in different workload netns do not depend on each other: they run side
    // by side (a few at a time); each still counts as its own step, in plan order.
    for (const group of parallelGroups(ops)) {
      const results = isHostRun(group)
        ? await this.#runHostBatches(group)
        : await Promise.allSettled(group.map((op) => this.#run(op)));
      for (const [i, op] of group.entries()) {
        const name = describeOp(op);
        const r = results[i];
        if (r?.status === 'rejected') {
          const e: unknown = r.reason;
          if (assumed !== undefined) {
            this.#log.warn(
              { op: name, err: describe(e) },
              'forwarder step failed on a host not as the last apply left it; reading the host and planning again',
            );
            const repaired = await this.#apply(desired);
            // As drift repair (the daemon's periodic reapply) would have logged it, only sooner.
            this.#log.warn(
              { ops: repaired.ops.length, ms: Math.round(repaired.ms) },
              'the data plane had drifted from what the connections need; repaired',
            );
            return repaired;
          }
          this.#log.error({ op: name, err: e }, 'forwarder apply failed');
          throw new AgentError(
            AgentError.is(e) ? e.code : 'EXEC_FAILED',
            `forwarder step '${name}' failed: ${describe(e)}`,
            {
              cause: e,
              hint: 'the steps before it stay applied; the next apply re-reads the host and continues from there',
            },
          );
        }
        this.#log.debug({ op: name }, 'forwarder op');
      }
      for (const op of group) await this.#step(step++, describeOp(op));
    }

    if (!sameRecord(after, intent)) await writeRecord(this.#o.stateDir, after);
    this.#record = after;
    await this.#step(step, 'record-final');
    this.#applied = desired;
    if (readKeys !== undefined && ops.length === 0)
      this.#quiet = { desired, record: intent, declaredVersion: this.#declaredVersion, keys: readKeys };
    const ms = performance.now() - started;
    if (ops.length > 0)
      this.#log.info(
        { ops: ops.length, ms: Math.round(ms), host: assumed === undefined ? 'read' : 'assumed' },
        'forwarder applied changes',
      );
    return { ops, ms };
  }

  async #step(index: number, name: string): Promise<void> {
    if (this.#o.onStep !== undefined) await this.#o.onStep({ index, name });
  }

  async #read(record: StateRecord): Promise<HostRead> {
    const [host, devices] = await Promise.all([
      readNetnsText(this.#host, this.#mark.proto, true),
      readDevices(this.#o.wireguard, [
        ...(this.#desired.device === undefined ? [] : [this.#desired.device.name]),
        ...record.devices,
      ]),
    ]);
    const workloads: Record<string, NetnsText> = {};
    for (let i = 0; i < record.netns.length; i += workloadParallelism) {
      const chunk = record.netns.slice(i, i + workloadParallelism);
      const views = await Promise.all(
        chunk.map((ref) => readNetnsText(workloadTarget(this.#o.runner, ref), this.#mark.proto, false)),
      );
      chunk.forEach((ref, j) => {
        const view = views[j];
        if (view !== undefined) workloads[netnsKey(ref)] = view;
      });
    }
    return { host, devices, workloads };
  }

  /**
   * Consecutive `ip -batch` ops on the host in one `ip -batch` process (a process start less per
   * stage; the commands keep their order, so the safe order holds). A failure is the op whose
   * command failed; the ones before it are done.
   */
  async #runHostBatches(group: readonly IpBatchOp[]): Promise<PromiseSettledResult<void>[]> {
    try {
      await this.#host.ip.batch(group.flatMap((op) => op.commands));
      return group.map(() => ({ status: 'fulfilled', value: undefined }));
    } catch (e: unknown) {
      const line = AgentError.is(e) ? e.details['line'] : undefined;
      let failed = 0;
      if (typeof line === 'number') {
        let end = 0;
        while (failed < group.length - 1 && line > (end += group[failed]?.commands.length ?? 0)) failed++;
      }
      return group.map((_, i) =>
        i < failed ? { status: 'fulfilled', value: undefined } : { status: 'rejected', reason: e },
      );
    }
  }

  #target(where: Where): NetnsTarget {
    return where.kind === 'host' ? this.#host : workloadTarget(this.#o.runner, where.netns);
  }

  async #run(op: ForwarderOp): Promise<void> {
    const wg = this.#o.wireguard;
    switch (op.op) {
      case 'device-ensure':
        await wg.ensureDevice(op.device.name, {
          privateKey: op.device.privateKey,
          listenPort: op.device.listenPort,
          mtu: op.device.mtu,
        });
        return;
      case 'device-link':
        await this.#host.ip.setLink(op.name, {
          ...(op.mtu === undefined ? {} : { mtu: op.mtu }),
          ...(op.up === undefined ? {} : { up: op.up }),
        });
        return;
      case 'peers-set':
        await wg.configure(op.device, { peers: op.peers });
        for (const p of op.peers) if (p.endpoint !== undefined) this.#declared.set(p.publicKey, p.endpoint);
        this.#declaredVersion++;
        return;
      case 'ip-batch':
        await this.#target(op.where).ip.batch(op.commands);
        return;
      case 'peers-remove':
        await wg.configure(op.device, { peers: [], removePeers: op.keys });
        for (const k of op.keys) this.#declared.delete(k);
        this.#declaredVersion++;
        return;
      case 'device-delete':
        await wg.deleteDevice(op.name);
        if (op.name === this.#desired.device?.name || this.#desired.device === undefined)
          this.#declared.clear();
        this.#declaredVersion++;
        return;
    }
  }
}

/** What a setEntries() apply plans from instead of reading the host. */
interface Assumed {
  /** The last successful apply's state, restricted (see Contributors). */
  readonly from: DesiredState;
  /** The state to apply, restricted to the same entries. */
  readonly to: DesiredState;
  /** The record of the state to apply when it is the last apply's (no netns entry changed). */
  readonly record?: StateRecord | undefined;
}

/** The host as read, before parsing. */
interface HostRead {
  readonly host: NetnsText;
  readonly devices: Readonly<Record<string, DeviceState>>;
  /** By netns key. */
  readonly workloads: Readonly<Record<string, NetnsText>>;
}

interface QuietRead {
  readonly desired: DesiredState;
  readonly record: StateRecord;
  readonly declaredVersion: number;
  readonly keys: readonly string[];
}

function hostStateOf(read: HostRead, proto: number): HostState {
  const workloads: Record<string, NetnsView> = {};
  for (const [key, text] of Object.entries(read.workloads)) workloads[key] = parseNetnsView(text, proto);
  return { host: parseNetnsView(read.host, proto), devices: read.devices, workloads };
}

/** What of a read a plan depends on, as strings to compare (see netnsTextKey, deviceKey). */
function keysOf(read: HostRead): string[] {
  const keys = [netnsTextKey(read.host)];
  for (const [name, d] of Object.entries(read.devices)) keys.push(name, deviceKey(d));
  keys.push('');
  for (const [key, text] of Object.entries(read.workloads)) keys.push(key, netnsTextKey(text));
  return keys;
}

function sameKeys(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((k, i) => k === b[i]);
}

/** How many workload netns are changed at once. */
const workloadParallelism = 8;

type IpBatchOp = Extract<ForwarderOp, { op: 'ip-batch' }>;

function isHostRun(group: readonly ForwarderOp[]): group is IpBatchOp[] {
  return group.length > 1 && group.every((op) => op.op === 'ip-batch' && op.where.kind === 'host');
}

/**
 * Consecutive ops that may run together: ip-batch ops of one stage in distinct workload netns (side
 * by side), and consecutive ip-batch ops on the host (in one `ip -batch`, in order).
 */
function parallelGroups(ops: readonly ForwarderOp[]): ForwarderOp[][] {
  const groups: ForwarderOp[][] = [];
  for (const op of ops) {
    const last = groups.at(-1);
    const head = last?.[0];
    if (last !== undefined && op.op === 'ip-batch' && op.where.kind === 'host' && isHostRun([...last, op])) {
      last.push(op);
    } else if (
      last !== undefined &&
      head?.op === 'ip-batch' &&
      op.op === 'ip-batch' &&
      head.where.kind === 'workload' &&
      op.where.kind === 'workload' &&
      head.stage === op.stage &&
      last.length < workloadParallelism
    ) {
      last.push(op);
    } else {
      groups.push([op]);
    }
  }
  return groups;
}
