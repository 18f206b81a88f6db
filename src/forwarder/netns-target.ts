import { AgentError } from '../errors/index.js';
import type { CommandRunner, NetnsRef, RunOptions, RunResult } from '../host/index.js';
import { Ip } from '../host/ip/index.js';

/**
 * Where the forwarder runs `ip`: the host's netns (the agent's own, or a named one when a test bed
 * simulates hosts) or a workload's netns. A named workload netns is reached with `ip -n <name>`, a
 * process' netns with `nsenter --net=/proc/<pid>/ns/net ip …`.
 */
export interface NetnsTarget {
  /** For messages and logs: `host` or the netns path. */
  readonly label: string;
  readonly ip: Ip;
  /** The argv prefix of an `ip` command in this netns, for tolerant reads. */
  readonly ipArgv: readonly string[];
  readonly runner: CommandRunner;
  /** What `ip link add … netns <this>` takes, for workloads. */
  readonly linkNetnsArg?: string;
}

export function hostTarget(runner: CommandRunner, netns?: string): NetnsTarget {
  return {
    label: netns === undefined ? 'host' : `host (netns ${netns})`,
    ip: new Ip(runner, netns === undefined ? {} : { netns }),
    ipArgv: netns === undefined ? ['ip'] : ['ip', '-n', netns],
    runner,
  };
}

export function workloadTarget(runner: CommandRunner, ref: NetnsRef): NetnsTarget {
  switch (ref.kind) {
    case 'named':
      return {
        label: `netns ${ref.name}`,
        ip: new Ip(runner, { netns: ref.name }),
        ipArgv: ['ip', '-n', ref.name],
        runner,
        linkNetnsArg: ref.name,
      };
    case 'pid': {
      const inner = new NsenterRunner(runner, `/proc/${ref.pid}/ns/net`);
      return {
        label: `netns of pid ${ref.pid}`,
        ip: new Ip(inner),
        ipArgv: ['ip'],
        runner: inner,
        linkNetnsArg: String(ref.pid),
      };
    }
    case 'path':
      throw new AgentError(
        'INVALID_ARGUMENT',
        `netns ${ref.path} is neither /var/run/netns/<name> nor /proc/<pid>/ns/net`,
        {
          hint: 'pass the workload netns as a name under /var/run/netns or as file:///proc/<pid>/ns/net',
        },
      );
  }
}

/** Runs every command inside another netns through `nsenter --net=<path>` (util-linux). */
export class NsenterRunner implements CommandRunner {
  readonly #inner: CommandRunner;
  readonly #path: string;

  constructor(inner: CommandRunner, path: string) {
    this.#inner = inner;
    this.#path = path;
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.#inner.run(['nsenter', `--net=${this.#path}`, ...argv], withoutNetns(options));
  }

  runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    return this.#inner.runChecked(['nsenter', `--net=${this.#path}`, ...argv], withoutNetns(options));
  }
}

function withoutNetns(o: RunOptions): RunOptions {
  return {
    ...(o.input === undefined ? {} : { input: o.input }),
    ...(o.timeoutMs === undefined ? {} : { timeoutMs: o.timeoutMs }),
  };
}

/** True when stderr says the netns itself is gone (the workload exited): an empty netns, not a failure. */
export function isMissingNetns(stderr: string): boolean {
  return /Cannot open network namespace|cannot open \/proc\/\d+\/ns\/net|No such file or directory/.test(
    stderr,
  );
}
