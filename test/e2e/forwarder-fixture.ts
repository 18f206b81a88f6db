// Shared by the forwarder e2e tests and their child process: the two-host test bed, each host's
// desired state (a host process and a netns workload, both reaching the other host through the
// WireGuard tunnel), and a forwarder for one host whose commands run in that host's netns.
import { ProcessRunner } from '../../src/host/command-runner.js';
import type { CommandRunner, RunOptions, RunResult } from '../../src/host/command-runner.js';
import { UserspaceWireGuard, publicKeyOf } from '../../src/host/wireguard/index.js';
import type {
  ConfigureOptions,
  DeviceConfig,
  DeviceState,
  WireGuard,
} from '../../src/host/wireguard/index.js';
import { Forwarder, wireguardMtu } from '../../src/forwarder/index.js';
import type { ApplyStep, DesiredState } from '../../src/forwarder/index.js';
import { testbedLayout } from '../helpers/testbed.js';
import type { TestbedHost } from '../helpers/testbed.js';

export const hosts = 2;
/** The workload netns of host i is `<prefix>-h9<i>`: a test-bed-shaped name, so parallel tests' snapshots ignore it. */
export const workloadNetns = (prefix: string, i: number): string => `${prefix}-h9${i}`;
/** Host-process addresses 169.254.0.<i>, netns-workload addresses 169.254.1.<i>. */
export const hostAddr = (i: number): string => `169.254.0.${i}`;
export const podAddr = (i: number): string => `169.254.1.${i}`;

export function desiredFor(prefix: string, i: number, keys: readonly string[]): DesiredState {
  const bed = testbedLayout({ prefix, hosts });
  const me = bed.hosts[i - 1] as TestbedHost;
  const other = bed.hosts.find((h) => h !== me) as TestbedHost;
  const j = other.index;
  const tunnel = (prefixes: string[]) => ({
    kind: 'tunnel' as const,
    peerPublicKey: publicKeyOf(keys[j - 1] ?? ''),
    endpoint: `${other.underlayIp}:51820`,
    remotePrefixes: prefixes,
  });
  return {
    device: { name: me.wgDevice, privateKey: keys[i - 1] ?? '', listenPort: 51820, mtu: wireguardMtu(1500) },
    entries: {
      'host-conn/wireguard': tunnel([`${hostAddr(j)}/32`]),
      'host-conn/kernel': { kind: 'host', addresses: [`${hostAddr(i)}/32`] },
      'pod-conn/wireguard': tunnel([`${podAddr(j)}/32`]),
      'pod-conn/kernel': {
        kind: 'netns',
        netns: { kind: 'named', name: workloadNetns(prefix, i) },
        ifName: 'nsm0',
        addresses: [`${podAddr(i)}/32`],
        routes: [`${podAddr(j)}/32`],
      },
    },
  };
}

/** A runner that records every command line it runs (for "no mutating command" checks). */
export class CountingRunner implements CommandRunner {
  readonly lines: string[] = [];
  readonly #inner = new ProcessRunner();

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.lines.push(argv.join(' ') + (options.input === undefined ? '' : ` <<< ${options.input.trim()}`));
    return this.#inner.run(argv, options);
  }

  runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.lines.push(argv.join(' ') + (options.input === undefined ? '' : ` <<< ${options.input.trim()}`));
    return this.#inner.runChecked(argv, options);
  }

  /** Everything but listings. */
  get mutations(): string[] {
    return this.lines.filter((l) => !/ show( |$)/.test(l));
  }
}

/** A WireGuard port that counts the calls that change something. */
export class CountingWireGuard implements WireGuard {
  readonly backend: WireGuard['backend'];
  readonly mutations: string[] = [];

  constructor(readonly inner: WireGuard) {
    this.backend = inner.backend;
  }

  ensureDevice(name: string, config: DeviceConfig): Promise<void> {
    this.mutations.push(`ensureDevice ${name}`);
    return this.inner.ensureDevice(name, config);
  }

  configure(name: string, options: ConfigureOptions): Promise<void> {
    this.mutations.push(`configure ${name}`);
    return this.inner.configure(name, options);
  }

  show(name: string): Promise<DeviceState | undefined> {
    return this.inner.show(name);
  }

  deleteDevice(name: string): Promise<void> {
    this.mutations.push(`deleteDevice ${name}`);
    return this.inner.deleteDevice(name);
  }
}

export interface HostForwarder {
  readonly forwarder: Forwarder;
  readonly runner: CountingRunner;
  readonly wireguard: CountingWireGuard;
}

/** A forwarder for host i of the bed: commands in the host's netns, its record in stateDir. */
export function forwarderFor(
  prefix: string,
  i: number,
  o: { stateDir: string; logDir: string; onStep?: (s: ApplyStep) => void | Promise<void> },
): HostForwarder {
  const bed = testbedLayout({ prefix, hosts });
  const h = bed.hosts[i - 1] as TestbedHost;
  const runner = new CountingRunner();
  const wireguard = new CountingWireGuard(
    new UserspaceWireGuard({ runner, netns: h.netns, logDir: o.logDir }),
  );
  const forwarder = new Forwarder({
    runner,
    wireguard,
    stateDir: o.stateDir,
    netns: h.netns,
    ...(o.onStep === undefined ? {} : { onStep: o.onStep }),
  });
  return { forwarder, runner, wireguard };
}
