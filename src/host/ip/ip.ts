import { AgentError } from '../../errors/index.js';
import { execFailed } from '../command-runner.js';
import type { CommandRunner, RunResult } from '../command-runner.js';
import { parseAddresses } from './address.js';
import type { Address } from './address.js';
import { batchScript } from './ip-batch.js';
import { parseLinks } from './link.js';
import type { Link } from './link.js';
import { isMissingTable, parseRoutes, routeArgs, routeFilterArgs } from './route.js';
import type { Route, RouteFilter, RouteSpec } from './route.js';

export interface IpOptions {
  /** Work inside this named netns (`ip -n <netns> …`); absent: the runner's own netns. */
  readonly netns?: string;
}

export interface VethOptions {
  /** Create the peer end directly inside this named netns. */
  readonly peerNetns?: string;
  readonly mtu?: number;
}

export interface LinkSettings {
  readonly mtu?: number;
  /** Enslave to this bridge; `null` removes it from its master. */
  readonly master?: string | null;
  readonly up?: boolean;
}

export interface BatchOptions {
  /** Keep going after a failed line (`ip -force`); the call still fails if any line failed. */
  readonly force?: boolean;
}

/**
 * Typed `ip` (iproute2) commands over a CommandRunner: every listing uses `-json` and a pure parser,
 * every change is one argv (or one `ip -batch -` for many). Idempotence is the caller's business
 * (the forwarder diffs before it changes); these are the plain operations.
 */
export class Ip {
  readonly #runner: CommandRunner;
  readonly #prefix: readonly string[];

  constructor(runner: CommandRunner, options: IpOptions = {}) {
    this.#runner = runner;
    this.#prefix = options.netns === undefined ? ['ip'] : ['ip', '-n', options.netns];
  }

  // ---- links

  async links(): Promise<Link[]> {
    const r = await this.#check(['-json', '-details', 'link', 'show']);
    return parseLinks(r.stdout);
  }

  /** The link, or undefined when there is none by that name. */
  async link(name: string): Promise<Link | undefined> {
    const argv = this.#argv(['-json', '-details', 'link', 'show', 'dev', name]);
    const r = await this.#runner.run(argv);
    if (r.code !== 0) {
      if (/does not exist|Cannot find device/.test(r.stderr)) return undefined;
      throw execFailed(argv, r);
    }
    return parseLinks(r.stdout)[0];
  }

  async addVeth(name: string, peer: string, options: VethOptions = {}): Promise<void> {
    const argv = ['link', 'add', name];
    if (options.mtu !== undefined) argv.push('mtu', String(options.mtu));
    argv.push('type', 'veth', 'peer', 'name', peer);
    if (options.peerNetns !== undefined) argv.push('netns', options.peerNetns);
    await this.#check(argv);
  }

  async addBridge(name: string): Promise<void> {
    await this.#check(['link', 'add', name, 'type', 'bridge']);
  }

  async addDummy(name: string): Promise<void> {
    await this.#check(['link', 'add', name, 'type', 'dummy']);
  }

  /** A kernel WireGuard interface; fails with "Unknown device type" where the module is missing. */
  async addWireGuard(name: string): Promise<void> {
    await this.#check(['link', 'add', name, 'type', 'wireguard']);
  }

  /** Changes mtu, master and up/down in one `ip link set` (up last, after the others apply). */
  async setLink(name: string, s: LinkSettings): Promise<void> {
    const argv = ['link', 'set', 'dev', name];
    if (s.mtu !== undefined) argv.push('mtu', String(s.mtu));
    if (s.master === null) argv.push('nomaster');
    else if (s.master !== undefined) argv.push('master', s.master);
    if (s.up !== undefined) argv.push(s.up ? 'up' : 'down');
    if (argv.length === 4) return;
    await this.#check(argv);
  }

  setUp(name: string): Promise<void> {
    return this.setLink(name, { up: true });
  }

  setDown(name: string): Promise<void> {
    return this.setLink(name, { up: false });
  }

  setMtu(name: string, mtu: number): Promise<void> {
    return this.setLink(name, { mtu });
  }

  /** Moves a link into a named netns (or a pid's netns); it disappears from this one. */
  async moveToNetns(name: string, netns: string | number): Promise<void> {
    await this.#check(['link', 'set', 'dev', name, 'netns', String(netns)]);
  }

  async deleteLink(name: string): Promise<void> {
    await this.#check(['link', 'del', 'dev', name]);
  }

  // ---- addresses

  async addresses(dev?: string): Promise<Address[]> {
    const r = await this.#check(['-json', 'addr', 'show', ...(dev === undefined ? [] : ['dev', dev])]);
    return parseAddresses(r.stdout);
  }

  async addAddress(dev: string, cidr: string): Promise<void> {
    await this.#check(['addr', 'add', cidr, 'dev', dev]);
  }

  /** Adds the address, or does nothing when the device already has it (`ip addr replace`). */
  async replaceAddress(dev: string, cidr: string): Promise<void> {
    await this.#check(['addr', 'replace', cidr, 'dev', dev]);
  }

  async deleteAddress(dev: string, cidr: string): Promise<void> {
    await this.#check(['addr', 'del', cidr, 'dev', dev]);
  }

  // ---- routes

  /** Routes matching the filter; a table that does not exist yet is an empty list. */
  async routes(filter: RouteFilter = {}): Promise<Route[]> {
    const family = filter.family === undefined ? [] : [`-${filter.family}`];
    const argv = this.#argv([...family, '-json', 'route', 'show', ...routeFilterArgs(filter)]);
    const r = await this.#runner.run(argv);
    if (r.code !== 0) {
      if (isMissingTable(r.stderr)) return [];
      throw execFailed(argv, r);
    }
    return parseRoutes(r.stdout, filter);
  }

  async addRoute(route: RouteSpec): Promise<void> {
    await this.#check(['route', 'add', ...routeArgs(route)]);
  }

  /** Adds the route or changes the existing one with the same destination, table and metric. */
  async replaceRoute(route: RouteSpec): Promise<void> {
    await this.#check(['route', 'replace', ...routeArgs(route)]);
  }

  async deleteRoute(route: RouteSpec): Promise<void> {
    await this.#check(['route', 'del', ...routeArgs(route)]);
  }

  // ---- bulk

  /**
   * Runs many `ip` commands in one process (`ip -batch -`): 200 routes cost one exec instead of 200.
   * Each command is the words after `ip`, e.g. `['route', 'replace', ...routeArgs(r)]`.
   */
  async batch(commands: readonly (readonly string[])[], options: BatchOptions = {}): Promise<void> {
    if (commands.length === 0) return;
    const script = batchScript(commands);
    const argv = this.#argv([...(options.force === true ? ['-force'] : []), '-batch', '-']);
    const r = await this.#runner.run(argv, { input: script });
    if (r.code !== 0) {
      const failedLine = /Command failed -:(\d+)/.exec(r.stderr)?.[1];
      const line = failedLine === undefined ? undefined : commands[Number(failedLine) - 1];
      throw new AgentError(
        'EXEC_FAILED',
        `'ip -batch' failed${line === undefined ? '' : ` at line ${failedLine} (${line.join(' ')})`}: ${r.stderr.trim().split('\n')[0] ?? ''}`,
        {
          hint: 'the lines before it were applied; re-read the host state before retrying',
          details: {
            command: 'ip -batch',
            exitCode: r.code,
            ...(failedLine === undefined ? {} : { line: Number(failedLine) }),
          },
        },
      );
    }
  }

  #argv(words: readonly string[]): string[] {
    return [...this.#prefix, ...words];
  }

  #check(words: readonly string[]): Promise<RunResult> {
    return this.#runner.runChecked(this.#argv(words));
  }
}
