import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import type { ConnectSpec, ExposeSpec } from '../config/index.js';
import { AgentError, describe } from '../errors/index.js';
import { SECRET_FILE_MODE, writeFileAtomic } from '../host/index.js';
import type { ConnectInput, ExposeInput } from './spec-validation.js';
import { connectKey, describeConnect, normalizeConnect, normalizeExpose } from './spec-validation.js';

/** Where a connect or expose comes from: the config file (declarative) or the CLI (kept in the state dir). */
export type SpecSource = 'config' | 'cli';

export type SourcedConnect = ConnectSpec & { readonly source: SpecSource };
export type SourcedExpose = ExposeSpec & { readonly source: SpecSource };

export interface WorkloadSpecsOptions {
  /** The agent's state dir; the CLI's specs are kept in `<stateDir>/workloads.json`. */
  readonly stateDir: string;
  /** The config file the `config` specs were read from, named in errors. */
  readonly configPath: string;
  /** The effective config's connects and exposes (validated by the config loader). */
  readonly config: {
    readonly connects: readonly ConnectSpec[];
    readonly exposes: readonly ExposeSpec[];
  };
}

export interface SpecsLoadReport {
  /**
   * CLI specs that the config file now declares too (the file was edited after `nsm-agent connect`);
   * the config's version is used. One line each, for the daemon's log.
   */
  readonly shadowed: readonly string[];
}

export const workloadsFileName = 'workloads.json';
/** Format version of workloads.json; an agent refuses a file of another version rather than guess. */
export const workloadsFileVersion = 1;

interface WorkloadsFile {
  readonly version: number;
  readonly connects: readonly ConnectSpec[];
  readonly exposes: readonly ExposeSpec[];
}

/**
 * The connects and exposes the daemon should have: the config file's (read-only here) and the
 * CLI's, which survive restarts in `<stateDir>/workloads.json` (DESIGN.md §7: nothing of value lives
 * only in memory). Mutations are validated, run one at a time, and are written (atomically, 0600)
 * before they are visible; a failed write changes nothing.
 */
export class WorkloadSpecs {
  /** Path of the CLI's specs. */
  readonly path: string;
  readonly #configPath: string;
  readonly #config: WorkloadSpecsOptions['config'];
  #cli: WorkloadsFile | undefined;

  constructor(options: WorkloadSpecsOptions) {
    this.path = join(options.stateDir, workloadsFileName);
    this.#configPath = options.configPath;
    this.#config = options.config;
  }

  /** Reads workloads.json (absent: no CLI specs). Call once before anything else. */
  async load(): Promise<SpecsLoadReport> {
    this.#cli = await this.#readFile();
    const shadowed: string[] = [];
    for (const c of this.#cli.connects) {
      if (this.#configConnect(c))
        shadowed.push(`connect ${describeConnect(c)} is in ${this.#configPath} too`);
    }
    for (const e of this.#cli.exposes) {
      if (this.#configExpose(e.service)) {
        shadowed.push(`expose ${JSON.stringify(e.service)} is in ${this.#configPath} too`);
      }
    }
    return { shadowed };
  }

  /** Every connect: the config file's first, then the CLI's (those the config repeats left out). */
  connects(): SourcedConnect[] {
    const cli = this.#loaded().connects.filter((c) => !this.#configConnect(c));
    return [
      ...this.#config.connects.map((c) => ({ ...c, source: 'config' as const })),
      ...cli.map((c) => ({ ...c, source: 'cli' as const })),
    ];
  }

  exposes(): SourcedExpose[] {
    const cli = this.#loaded().exposes.filter((e) => !this.#configExpose(e.service));
    return [
      ...this.#config.exposes.map((e) => ({ ...e, source: 'config' as const })),
      ...cli.map((e) => ({ ...e, source: 'cli' as const })),
    ];
  }

  /** Validates and keeps a CLI connect; ALREADY_EXISTS when the same service and netns is there. */
  addConnect(input: ConnectInput): Promise<SourcedConnect> {
    return this.#mutate((file) => {
      const spec = normalizeConnect(input);
      const fromConfig = this.#configConnect(spec);
      const fromCli = file.connects.find((c) => connectKey(c) === connectKey(spec));
      if (fromConfig || fromCli) {
        throw new AgentError(
          'ALREADY_EXISTS',
          `${describeConnect(spec)} is already connected (${fromConfig ? `declared in ${this.#configPath}` : 'added with nsm-agent connect'})`,
          {
            hint: fromConfig
              ? 'nothing to do; see nsm-agent status'
              : `nothing to do; to change its labels, run nsm-agent disconnect ${disconnectArgs(spec)} first`,
          },
        );
      }
      return { file: { ...file, connects: [...file.connects, spec] }, result: { ...spec, source: 'cli' } };
    });
  }

  /** Forgets a CLI connect and returns it. */
  removeConnect(service: string, netns?: string): Promise<SourcedConnect> {
    return this.#mutate((file) => {
      const wanted = { service, ...(netns === undefined ? {} : { netns }) };
      const key = connectKey(wanted);
      if (this.#configConnect(wanted)) {
        throw new AgentError(
          'FAILED_PRECONDITION',
          `the connect to ${describeConnect(wanted)} is declared in ${this.#configPath}; remove it there`,
          { hint: `delete it from "connects" in ${this.#configPath} and restart the agent` },
        );
      }
      const found = file.connects.find((c) => connectKey(c) === key);
      if (!found) {
        const all = this.connects().map((c) => describeConnect(c));
        throw new AgentError(
          'NOT_FOUND',
          `there is no connect to ${describeConnect(wanted)}; ${all.length === 0 ? 'there are no connects' : `connects: ${all.join(', ')}`}`,
          { hint: 'see nsm-agent status for what is connected, and give the same --netns as the connect' },
        );
      }
      return {
        file: { ...file, connects: file.connects.filter((c) => c !== found) },
        result: { ...found, source: 'cli' },
      };
    });
  }

  /** Validates and keeps a CLI expose; ALREADY_EXISTS when the service is exposed already. */
  addExpose(input: ExposeInput): Promise<SourcedExpose> {
    return this.#mutate((file) => {
      const spec = normalizeExpose(input);
      const fromConfig = this.#configExpose(spec.service);
      const existing = fromConfig ?? file.exposes.find((e) => e.service === spec.service);
      if (existing) {
        throw new AgentError(
          'ALREADY_EXISTS',
          `"${spec.service}" is already exposed (cidr ${existing.cidr}, ${fromConfig ? `declared in ${this.#configPath}` : 'added with nsm-agent expose'})`,
          {
            hint: fromConfig
              ? `nothing to do; to change it, edit "exposes" in ${this.#configPath}`
              : `nothing to do; to change it, run nsm-agent unexpose ${spec.service} first`,
          },
        );
      }
      return { file: { ...file, exposes: [...file.exposes, spec] }, result: { ...spec, source: 'cli' } };
    });
  }

  /** Forgets a CLI expose and returns it. */
  removeExpose(service: string): Promise<SourcedExpose> {
    return this.#mutate((file) => {
      if (this.#configExpose(service)) {
        throw new AgentError(
          'FAILED_PRECONDITION',
          `the expose of "${service}" is declared in ${this.#configPath}; remove it there`,
          { hint: `delete it from "exposes" in ${this.#configPath} and restart the agent` },
        );
      }
      const found = file.exposes.find((e) => e.service === service);
      if (!found) {
        const all = this.exposes().map((e) => JSON.stringify(e.service));
        throw new AgentError(
          'NOT_FOUND',
          `"${service}" is not exposed; ${all.length === 0 ? 'nothing is exposed' : `exposed: ${all.join(', ')}`}`,
          { hint: 'see nsm-agent status for what this host exposes' },
        );
      }
      return {
        file: { ...file, exposes: file.exposes.filter((e) => e !== found) },
        result: { ...found, source: 'cli' },
      };
    });
  }

  #configConnect(spec: Pick<ConnectSpec, 'service' | 'netns'>): ConnectSpec | undefined {
    const key = connectKey(spec);
    return this.#config.connects.find((c) => connectKey(c) === key);
  }

  #configExpose(service: string): ExposeSpec | undefined {
    return this.#config.exposes.find((e) => e.service === service);
  }

  #loaded(): WorkloadsFile {
    if (!this.#cli) {
      throw new AgentError('INTERNAL', 'the workload specs were used before load()', {
        hint: 'call WorkloadSpecs.load() once at start-up',
      });
    }
    return this.#cli;
  }

  /**
   * Changes apply in order, each on the file as the ones before it left it; the changes that queued
   * while a write ran share the next write (one fsync'd write for 20 concurrent connects, not 20 in
   * series), and each resolves once a write holding it is on disk. A failed write fails the changes
   * it held and changes nothing.
   */
  #mutate<T>(change: (file: WorkloadsFile) => { file: WorkloadsFile; result: T }): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({ change, resolve: resolve as (v: unknown) => void, reject });
      if (!this.#writing) void this.#drain();
    });
  }

  #pending: {
    change: (file: WorkloadsFile) => { file: WorkloadsFile; result: unknown };
    resolve: (v: unknown) => void;
    reject: (e: unknown) => void;
  }[] = [];
  #writing = false;

  async #drain(): Promise<void> {
    this.#writing = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0);
        let file: WorkloadsFile;
        try {
          file = this.#loaded();
        } catch (e: unknown) {
          for (const m of batch) m.reject(e);
          continue;
        }
        const held: { resolve: (v: unknown) => void; reject: (e: unknown) => void; result: unknown }[] = [];
        for (const m of batch) {
          try {
            const r = m.change(file);
            file = r.file;
            held.push({ resolve: m.resolve, reject: m.reject, result: r.result });
          } catch (e: unknown) {
            m.reject(e);
          }
        }
        if (held.length === 0) continue;
        try {
          await this.#writeFile(file);
        } catch (e: unknown) {
          for (const h of held) h.reject(e);
          continue;
        }
        this.#cli = file;
        for (const h of held) h.resolve(h.result);
      }
    } finally {
      this.#writing = false;
    }
  }

  async #readFile(): Promise<WorkloadsFile> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (e: unknown) {
      if (errnoOf(e) === 'ENOENT') return { version: workloadsFileVersion, connects: [], exposes: [] };
      throw AgentError.wrap(
        e,
        errnoOf(e) === 'EACCES' ? 'PERMISSION_DENIED' : 'FAILED_PRECONDITION',
        `cannot read ${this.path}`,
        'run the agent as root (it owns its state dir)',
      );
    }
    return this.#parse(text);
  }

  #parse(text: string): WorkloadsFile {
    const moveAside = `or move it aside to start without the connects and exposes added with the CLI (the config file's are kept)`;
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e: unknown) {
      throw new AgentError('CONFIG_INVALID', `${this.path} is not valid JSON: ${describe(e)}`, {
        hint: `fix it, ${moveAside}`,
        cause: e,
      });
    }
    if (!isRecord(raw) || typeof raw['version'] !== 'number') {
      throw new AgentError('CONFIG_INVALID', `${this.path} has no format version`, {
        hint: `it was not written by nsm-agent; ${moveAside}`,
      });
    }
    const version = raw['version'];
    if (version !== workloadsFileVersion) {
      throw new AgentError(
        'FAILED_PRECONDITION',
        `${this.path} has format version ${version}, but this nsm-agent reads version ${workloadsFileVersion}`,
        {
          hint: `it was written by ${version > workloadsFileVersion ? 'a newer' : 'another'} nsm-agent: run that version again, ${moveAside}`,
        },
      );
    }
    const entry = <T>(list: string, i: number, f: () => T): T => {
      try {
        return f();
      } catch (e: unknown) {
        throw new AgentError('CONFIG_INVALID', `${this.path} ${list}[${i}]: ${describe(e)}`, {
          hint: `fix or delete that entry, ${moveAside}`,
          cause: e,
        });
      }
    };
    const connects = arrayOf(raw['connects']).map((c, i) =>
      entry('connects', i, () => normalizeConnect(asInput(c))),
    );
    const exposes = arrayOf(raw['exposes']).map((e, i) =>
      entry('exposes', i, () => normalizeExpose(asInput(e))),
    );
    return { version, connects, exposes };
  }

  async #writeFile(file: WorkloadsFile): Promise<void> {
    const data = `${JSON.stringify({ version: workloadsFileVersion, connects: file.connects, exposes: file.exposes }, null, 2)}\n`;
    try {
      await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
      await writeFileAtomic(this.path, data, SECRET_FILE_MODE);
    } catch (e: unknown) {
      throw AgentError.wrap(
        e,
        errnoOf(e) === 'EACCES' ? 'PERMISSION_DENIED' : 'FAILED_PRECONDITION',
        `cannot save ${this.path}; nothing was changed`,
        'check that the state dir is writable by the agent and the disk is not full',
      );
    }
  }
}

function disconnectArgs(spec: ConnectSpec): string {
  return spec.netns === undefined ? spec.service : `${spec.service} --netns ${spec.netns}`;
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function arrayOf(v: unknown): unknown[] {
  return Array.isArray(v) ? (v as unknown[]) : [];
}

/** Shape check of a stored entry; the normalizers check the values. */
function asInput(v: unknown): ConnectInput & ExposeInput {
  if (!isRecord(v) || typeof v['service'] !== 'string') {
    throw new AgentError('CONFIG_INVALID', 'not an object with a "service" string');
  }
  for (const k of ['netns', 'cidr'] as const) {
    if (v[k] !== undefined && typeof v[k] !== 'string')
      throw new AgentError('CONFIG_INVALID', `"${k}" is not a string`);
  }
  if (v['labels'] !== undefined && !isRecord(v['labels'])) {
    throw new AgentError('CONFIG_INVALID', '"labels" is not an object');
  }
  const allow = v['allow'];
  if (allow !== undefined && !(Array.isArray(allow) && allow.every((a) => typeof a === 'string'))) {
    throw new AgentError('CONFIG_INVALID', '"allow" is not a list of strings');
  }
  return v as unknown as ConnectInput & ExposeInput;
}

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}
