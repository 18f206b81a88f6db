import { rm } from 'node:fs/promises';
import { AgentError, describe } from '../../errors/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import { systemClock } from '../clock.js';
import type { Clock } from '../clock.js';
import type { CommandRunner } from '../command-runner.js';
import { effectiveArgv, execFailed } from '../command-runner.js';
import { processExists, signalProcess, spawnDetached } from '../detached-process.js';
import type { DetachedStarter } from '../detached-process.js';
import { Ip } from '../ip/ip.js';
import { NativeUdpSocketBuffers, defaultUdpBufferBytes } from '../socket-buffers/index.js';
import type { UdpSocketBuffer, UdpSocketBuffers } from '../socket-buffers/index.js';
import { parseUapiGet, uapiErrno, uapiGetRequest, uapiSetRequest } from './uapi.js';
import { unixUapiTransport } from './uapi-client.js';
import type { UapiTransport } from './uapi-client.js';
import { listWireGuardGoProcesses } from './wireguard-go-processes.js';
import type { WireGuardGoProcess } from './wireguard-go-processes.js';
import { checkDeviceName, defaultWireGuardMtu } from './wireguard.js';
import type { ConfigureOptions, DeviceConfig, DeviceState, WireGuard } from './wireguard.js';

export interface UserspaceWireGuardOptions {
  readonly runner: CommandRunner;
  /** Named netns the device lives in; absent: the agent's own. */
  readonly netns?: string;
  /** Where wireguard-go puts `<if>.sock`; shared by all namespaces of the machine. */
  readonly socketDir?: string;
  /** Where each device's wireguard-go log goes (`wireguard-go-<if>.log`). */
  readonly logDir?: string;
  readonly wireguardGo?: string;
  /** The environment wireguard-go starts with (default: the agent's, minus WG_* variables). */
  readonly env?: Readonly<Record<string, string | undefined>>;
  readonly startTimeoutMs?: number;
  readonly uapi?: UapiTransport;
  readonly starter?: DetachedStarter;
  readonly processes?: () => Promise<readonly WireGuardGoProcess[]>;
  readonly clock?: Clock;
  /** Start, adoption and removal of wireguard-go processes are logged here (never keys). */
  readonly log?: Logger;
  /**
   * SO_RCVBUF/SO_SNDBUF given to wireguard-go's UDP sockets once the device is up (default 4 MiB;
   * 0: leave wireguard-go's own). Debian's wireguard-go keeps the 208 KiB default, which drops
   * datagrams under load (bench/results/dataplane-knobs-round5-buffer-sizes.txt: ×1.5 with 4 MiB).
   */
  readonly udpBufferBytes?: number;
  /** How the buffers are set (default: the native helper, pidfd_getfd + SO_RCVBUFFORCE). */
  readonly socketBuffers?: UdpSocketBuffers;
  /**
   * Run wireguard-go's threads with SCHED_BATCH (`chrt -b -a -p 0 <pid>`; default true). Started in
   * a session of its own, wireguard-go is a scheduling group of its own (autogroup), and each packet
   * woke it with a preemption: ~80 context switches per Mbit. SCHED_BATCH keeps the wakeups from
   * preempting, so it works in batches: ×1.2 throughput, a sixth of the context switches, less CPU
   * per Gbit/s (bench/results/dataplane-knobs-round6-sched-batch.txt). It is no priority boost.
   */
  readonly schedBatch?: boolean;
}

export const defaultSocketDir = '/var/run/wireguard';
export const defaultLogDir = '/var/log/nsm-agent';

/**
 * WireGuard in userspace: one detached `wireguard-go -f <if>` per device, configured over its UAPI
 * socket. The process outlives the agent (own session, log file), so an agent restart finds the
 * device still passing traffic and adopts it through the socket. Deleting the link makes
 * wireguard-go exit and remove its socket; a process that does not is killed by pid.
 */
export class UserspaceWireGuard implements WireGuard {
  readonly backend = 'userspace' as const;
  readonly #o: UserspaceWireGuardOptions;
  readonly #ip: Ip;
  readonly #uapi: UapiTransport;
  readonly #clock: Clock;
  readonly #log: Logger;
  #socketBuffers: UdpSocketBuffers | undefined;
  /** `<device>:<what>` problems logged as a warning already (then: debug, not on every apply). */
  readonly #warned = new Set<string>();

  constructor(options: UserspaceWireGuardOptions) {
    this.#o = options;
    this.#ip = new Ip(options.runner, options.netns === undefined ? {} : { netns: options.netns });
    this.#uapi = options.uapi ?? unixUapiTransport;
    this.#clock = options.clock ?? systemClock;
    this.#log = (options.log ?? silentLogger()).child({ subsystem: 'wireguard-go' });
  }

  socketPath(name: string): string {
    return `${this.#o.socketDir ?? defaultSocketDir}/${checkDeviceName(name)}.sock`;
  }

  logPath(name: string): string {
    return `${this.#o.logDir ?? defaultLogDir}/wireguard-go-${checkDeviceName(name)}.log`;
  }

  async ensureDevice(name: string, config: DeviceConfig): Promise<void> {
    if ((await this.show(name)) === undefined) await this.#start(name);
    else this.#log.debug({ device: name }, 'adopted the running wireguard-go device');
    await this.#set(name, uapiSetRequest({ privateKey: config.privateKey, listenPort: config.listenPort }));
    await this.#ip.setLink(name, { mtu: config.mtu ?? defaultWireGuardMtu, up: true });
    // wireguard-go (re)opens its UDP sockets when the link comes up and when the listen port
    // changes, with default buffers each time; the check is cheap and changes nothing when they are
    // big already, so it runs on every ensureDevice (start, adoption, port change, re-apply).
    const pid = await this.#pidOf(name);
    if (pid === undefined) {
      this.#log.debug({ device: name }, 'no wireguard-go process found; not tuned');
      return;
    }
    await this.#ensureUdpBuffers(name, pid);
    await this.#ensureSchedBatch(name, pid);
  }

  /**
   * wireguard-go's UDP sockets of a device and their buffers as they are now (for doctor and
   * tests); undefined when no wireguard-go process serves the device.
   */
  async udpSocketBuffers(name: string): Promise<readonly UdpSocketBuffer[] | undefined> {
    const pid = await this.#pidOf(name);
    return pid === undefined ? undefined : this.#buffers().ensure(pid, 0);
  }

  async configure(name: string, options: ConfigureOptions): Promise<void> {
    await this.#set(name, uapiSetRequest({}, options));
  }

  async show(name: string): Promise<DeviceState | undefined> {
    try {
      return parseUapiGet(name, await this.#uapi(this.socketPath(name), uapiGetRequest));
    } catch (e: unknown) {
      if (AgentError.is(e, 'NOT_FOUND')) return undefined;
      throw e;
    }
  }

  async deleteDevice(name: string): Promise<void> {
    const pids = (await this.#processes())
      .filter((p) => p.device === checkDeviceName(name))
      .map((p) => p.pid);
    const argv = this.#ipArgv(['link', 'del', 'dev', name]);
    const r = await this.#o.runner.run(argv);
    if (r.code !== 0 && !/Cannot find device|does not exist/.test(r.stderr)) throw execFailed(argv, r);
    // wireguard-go exits on its own once its TUN is gone; give it a moment, then insist.
    if (!(await this.#waitGone(pids, 2_000))) {
      this.#log.warn(
        { device: name, pids },
        'wireguard-go did not exit after its link was deleted; killing it',
      );
      for (const pid of pids) signalProcess(pid, 'SIGKILL');
      await this.#waitGone(pids, 2_000);
    }
    await rm(this.socketPath(name), { force: true });
    if (pids.length > 0) this.#log.info({ device: name, pids }, 'removed wireguard-go device');
  }

  async #start(name: string): Promise<void> {
    // A socket left by a killed process would make the new one fail with "address in use".
    await rm(this.socketPath(name), { force: true });
    const argv = effectiveArgv([this.#o.wireguardGo ?? 'wireguard-go', '-f', name], this.#o.netns);
    const starter = this.#o.starter ?? spawnDetached;
    const pid = await starter(argv, {
      logFile: this.logPath(name),
      env: wireguardGoEnv(this.#o.env ?? process.env),
    });
    const deadline = this.#clock.now() + (this.#o.startTimeoutMs ?? 5_000);
    for (;;) {
      if ((await this.show(name)) !== undefined) {
        this.#log.info(
          { device: name, pid, netns: this.#o.netns ?? '', logFile: this.logPath(name) },
          'started wireguard-go',
        );
        return;
      }
      if (!processExists(pid) || this.#clock.now() > deadline) {
        signalProcess(pid, 'SIGKILL');
        throw new AgentError('UNAVAILABLE', `wireguard-go for ${name} did not come up (pid ${pid})`, {
          hint: `read ${this.logPath(name)}; check /dev/net/tun exists (modprobe tun) and that no other device is called ${name}`,
          details: { device: name, pid },
        });
      }
      await this.#clock.sleep(10);
    }
  }

  async #ensureUdpBuffers(name: string, pid: number): Promise<void> {
    const bytes = this.#o.udpBufferBytes ?? defaultUdpBufferBytes;
    if (bytes === 0) return;
    try {
      // The sockets appear shortly after the link goes up (wireguard-go binds on its "up" event).
      const deadline = this.#clock.now() + 2_000;
      let sockets = await this.#buffers().ensure(pid, bytes);
      while (sockets.length === 0 && this.#clock.now() < deadline) {
        await this.#clock.sleep(10);
        sockets = await this.#buffers().ensure(pid, bytes);
      }
      if (sockets.length === 0) {
        throw new AgentError('UNAVAILABLE', `wireguard-go (pid ${pid}) has no UDP socket after 2 s`, {
          hint: `read ${this.logPath(name)}; the listen port may be taken`,
        });
      }
      this.#warned.delete(`${name}:buffers`);
      if (sockets.some((s) => s.changed)) {
        this.#log.info(
          { device: name, pid, rcvbuf: Math.min(...sockets.map((s) => s.rcvbuf)), sockets: sockets.length },
          "gave wireguard-go's UDP sockets bigger buffers",
        );
      }
    } catch (e: unknown) {
      // Fails soft: the tunnel works with the default buffers, only slower.
      this.#warnOnce(
        `${name}:buffers`,
        { device: name, pid, err: describe(e) },
        'wireguard-go keeps its default UDP buffers (less throughput); nsm-agent doctor shows why',
      );
    }
  }

  async #ensureSchedBatch(name: string, pid: number): Promise<void> {
    if (this.#o.schedBatch === false) return;
    // Every thread that exists now; threads Go starts later inherit the policy from their creator.
    const argv = ['chrt', '-b', '-a', '-p', '0', String(pid)];
    try {
      const r = await this.#o.runner.run(argv, { timeoutMs: 5_000 });
      if (r.code !== 0) throw execFailed(argv, r);
      this.#warned.delete(`${name}:sched`);
    } catch (e: unknown) {
      this.#warnOnce(
        `${name}:sched`,
        { device: name, pid, err: describe(e) },
        'wireguard-go keeps the normal scheduling policy (more context switches, less throughput); install util-linux (chrt)',
      );
    }
  }

  #warnOnce(key: string, fields: Record<string, unknown>, message: string): void {
    const level = this.#warned.has(key) ? 'debug' : 'warn';
    this.#warned.add(key);
    this.#log[level](fields, message);
  }

  #buffers(): UdpSocketBuffers {
    this.#socketBuffers ??= this.#o.socketBuffers ?? new NativeUdpSocketBuffers();
    return this.#socketBuffers;
  }

  async #pidOf(name: string): Promise<number | undefined> {
    return (await this.#processes()).find((p) => p.device === checkDeviceName(name))?.pid;
  }

  async #set(name: string, request: string): Promise<void> {
    const reply = await this.#uapi(this.socketPath(name), request);
    const errno = uapiErrno(reply);
    if (errno !== 0) {
      throw new AgentError(
        'EXEC_FAILED',
        `wireguard-go refused the configuration of ${name} (errno ${errno})`,
        {
          hint: `errno ${errno}: ${errnoMeaning(errno)}; details in ${this.logPath(name)}`,
          details: { device: name, errno },
        },
      );
    }
  }

  async #waitGone(pids: readonly number[], ms: number): Promise<boolean> {
    const deadline = this.#clock.now() + ms;
    while (pids.some(processExists)) {
      if (this.#clock.now() > deadline) return false;
      await this.#clock.sleep(10);
    }
    return true;
  }

  #processes(): Promise<readonly WireGuardGoProcess[]> {
    return (this.#o.processes ?? listWireGuardGoProcesses)();
  }

  #ipArgv(words: readonly string[]): string[] {
    return this.#o.netns === undefined ? ['ip', ...words] : ['ip', '-n', this.#o.netns, ...words];
  }
}

/** The agent's environment without the variables that change how wireguard-go starts. */
export function wireguardGoEnv(env: Readonly<Record<string, string | undefined>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(env)) {
    if (v !== undefined && !k.startsWith('WG_')) out[k] = v;
  }
  out['LOG_LEVEL'] ??= 'error';
  return out;
}

function errnoMeaning(errno: number): string {
  // wireguard-go's ipcErrorIO / ipcErrorInvalid / ipcErrorPortInUse … (device/uapi.go)
  switch (Math.abs(errno)) {
    case 5:
      return 'I/O error';
    case 22:
      return 'an invalid value';
    case 98:
      return 'the listen port is in use (pick another wireguard.port or stop what holds it)';
    case 95:
      return 'not supported by this wireguard-go';
    default:
      return 'see wireguard-go device/uapi.go';
  }
}
