import { AgentError } from '../errors/index.js';
import { execFailed } from './command-runner.js';
import type { CommandRunner, RunOptions, RunResult } from './command-runner.js';
import { parseIpJson, requireStr } from './ip/ip-json.js';

/** Where `ip netns add` pins named network namespaces. */
export const namedNetnsDir = '/var/run/netns';

/**
 * A network namespace reference as NSM and our config give it: a name under /var/run/netns, a
 * process' netns (`/proc/<pid>/ns/net`, NSM's `inodeURL` `file:///proc/<pid>/ns/net`), or another
 * bind-mounted path.
 */
export type NetnsRef =
  | { readonly kind: 'named'; readonly name: string }
  | { readonly kind: 'pid'; readonly pid: number }
  | { readonly kind: 'path'; readonly path: string };

const namePattern = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;

export function namedNetnsPath(name: string): string {
  return `${namedNetnsDir}/${checkNetnsName(name)}`;
}

export function pidNetnsPath(pid: number): string {
  if (!Number.isInteger(pid) || pid <= 0) {
    throw new AgentError('INVALID_ARGUMENT', `not a process id: ${pid}`, {
      hint: 'pass a positive integer pid',
    });
  }
  return `/proc/${pid}/ns/net`;
}

/** The filesystem path of a netns reference (what setns/nsenter open). */
export function netnsPath(ref: NetnsRef): string {
  switch (ref.kind) {
    case 'named':
      return namedNetnsPath(ref.name);
    case 'pid':
      return pidNetnsPath(ref.pid);
    case 'path':
      return ref.path;
  }
}

/**
 * Reads a netns reference: a bare name (`blue`), `/var/run/netns/<name>` or `/run/netns/<name>`,
 * `/proc/<pid>/ns/net`, a `file://` URL of any of these, or another absolute path.
 */
export function parseNetnsRef(text: string): NetnsRef {
  const raw = text.startsWith('file://') ? decodeURIComponent(text.slice('file://'.length)) : text;
  if (!raw.startsWith('/')) return { kind: 'named', name: checkNetnsName(raw) };
  const named = /^\/(?:var\/)?run\/netns\/([^/]+)$/.exec(raw);
  if (named?.[1] !== undefined) return { kind: 'named', name: checkNetnsName(named[1]) };
  const pid = /^\/proc\/(\d+)\/ns\/net$/.exec(raw);
  if (pid?.[1] !== undefined) return { kind: 'pid', pid: Number(pid[1]) };
  if (raw.includes('/../') || raw.endsWith('/..')) {
    throw new AgentError('INVALID_ARGUMENT', `netns path ${JSON.stringify(text)} contains '..'`, {
      hint: 'give a name, /var/run/netns/<name> or /proc/<pid>/ns/net',
    });
  }
  return { kind: 'path', path: raw };
}

export function checkNetnsName(name: string): string {
  if (!namePattern.test(name)) {
    throw new AgentError('INVALID_ARGUMENT', `invalid network namespace name ${JSON.stringify(name)}`, {
      hint: 'use letters, digits, ".", "_" and "-" (at most 64), starting with a letter or digit',
    });
  }
  return name;
}

/** Parses `ip -json netns list` (which prints nothing at all when there are none). */
export function parseNetnsList(stdout: string): string[] {
  return parseIpJson(stdout, 'netns list').map((o) => requireStr(o, 'name', 'netns'));
}

/** Named network namespaces through `ip netns`. */
export class Netns {
  readonly #runner: CommandRunner;

  constructor(runner: CommandRunner) {
    this.#runner = runner;
  }

  async list(): Promise<string[]> {
    const r = await this.#runner.runChecked(['ip', '-json', 'netns', 'list']);
    return parseNetnsList(r.stdout);
  }

  async exists(name: string): Promise<boolean> {
    return (await this.list()).includes(checkNetnsName(name));
  }

  async create(name: string): Promise<void> {
    await this.#runner.runChecked(['ip', 'netns', 'add', checkNetnsName(name)]);
  }

  /** Creates the netns unless it is there already. */
  async ensure(name: string): Promise<void> {
    if (!(await this.exists(name))) await this.create(name);
  }

  /** Deletes the netns; one that is not there is fine (deletion is what cleanup retries). */
  async delete(name: string): Promise<void> {
    const argv = ['ip', 'netns', 'del', checkNetnsName(name)];
    const r = await this.#runner.run(argv);
    if (r.code !== 0 && !/No such file or directory/.test(r.stderr)) throw execFailed(argv, r);
  }

  /** Runs argv inside the named netns. */
  run(name: string, argv: readonly string[], options: Omit<RunOptions, 'netns'> = {}): Promise<RunResult> {
    return this.#runner.run(argv, { ...options, netns: checkNetnsName(name) });
  }

  runChecked(
    name: string,
    argv: readonly string[],
    options: Omit<RunOptions, 'netns'> = {},
  ): Promise<RunResult> {
    return this.#runner.runChecked(argv, { ...options, netns: checkNetnsName(name) });
  }
}
