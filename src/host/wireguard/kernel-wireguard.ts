import { AgentError } from '../../errors/index.js';
import { execFailed } from '../command-runner.js';
import type { CommandRunner, RunOptions } from '../command-runner.js';
import { Ip } from '../ip/ip.js';
import { withKeyFile } from './key-file.js';
import { assertNotInArgv } from './keys.js';
import { checkCidr, checkEndpoint } from './uapi.js';
import { parseWgDump } from './wg-dump.js';
import { checkDeviceName, defaultWireGuardMtu } from './wireguard.js';
import type { ConfigureOptions, DeviceConfig, DeviceState, WireGuard } from './wireguard.js';

export interface KernelWireGuardOptions {
  readonly runner: CommandRunner;
  /** Named netns the device lives in; absent: the agent's own. */
  readonly netns?: string;
  /** Where the private key is written for the moment `wg set` reads it (default: the OS temp dir). */
  readonly keyFileDir?: string;
}

/**
 * Kernel WireGuard: the interface is `ip link add <if> type wireguard`, configured with `wg set`.
 * The private key goes to `wg` through a root-only temporary file, never in argv. The kernel keeps
 * keys and peers when the agent dies, so tunnels outlive any agent restart.
 */
export class KernelWireGuard implements WireGuard {
  readonly backend = 'kernel' as const;
  readonly #runner: CommandRunner;
  readonly #ip: Ip;
  readonly #runOpts: RunOptions;
  readonly #keyFileDir: string | undefined;

  constructor(options: KernelWireGuardOptions) {
    this.#runner = options.runner;
    this.#ip = new Ip(options.runner, options.netns === undefined ? {} : { netns: options.netns });
    this.#runOpts = options.netns === undefined ? {} : { netns: options.netns };
    this.#keyFileDir = options.keyFileDir;
  }

  async ensureDevice(name: string, config: DeviceConfig): Promise<void> {
    checkDeviceName(name);
    const link = await this.#ip.link(name);
    if (link === undefined) await this.#ip.addWireGuard(name);
    else if (link.kind !== undefined && link.kind !== 'wireguard') {
      throw new AgentError(
        'ALREADY_EXISTS',
        `interface ${name} exists and is a ${link.kind}, not WireGuard`,
        {
          hint: `remove it (ip link del ${name}) or set another wireguard.interface in the config`,
        },
      );
    }
    await withKeyFile(
      config.privateKey,
      async (keyFile) => {
        const argv = ['wg', 'set', name, 'listen-port', String(config.listenPort), 'private-key', keyFile];
        assertNotInArgv(argv, config.privateKey);
        await this.#runner.runChecked(argv, this.#runOpts);
      },
      this.#keyFileDir,
    );
    await this.#ip.setLink(name, { mtu: config.mtu ?? defaultWireGuardMtu, up: true });
  }

  async configure(name: string, options: ConfigureOptions): Promise<void> {
    checkDeviceName(name);
    const remove = new Set(options.removePeers ?? []);
    if (options.replacePeers === true) {
      const wanted = new Set(options.peers.map((p) => p.publicKey));
      const current = await this.show(name);
      for (const p of current?.peers ?? []) if (!wanted.has(p.publicKey)) remove.add(p.publicKey);
    }
    const argv = ['wg', 'set', name];
    for (const key of remove) argv.push('peer', key, 'remove');
    for (const p of options.peers) {
      argv.push('peer', p.publicKey);
      if (p.endpoint !== undefined) argv.push('endpoint', checkEndpoint(p.endpoint));
      argv.push('persistent-keepalive', p.persistentKeepalive ? String(p.persistentKeepalive) : 'off');
      // An empty list clears the peer's allowed IPs, as the declaration says.
      argv.push('allowed-ips', p.allowedIps.map(checkCidr).join(','));
    }
    if (argv.length === 3) return;
    await this.#runner.runChecked(argv, this.#runOpts);
  }

  async show(name: string): Promise<DeviceState | undefined> {
    const argv = ['wg', 'show', checkDeviceName(name), 'dump'];
    const r = await this.#runner.run(argv, this.#runOpts);
    if (r.code !== 0) {
      if (/No such device|Unable to access interface/.test(r.stderr)) return undefined;
      throw execFailed(argv, r);
    }
    return parseWgDump(name, r.stdout);
  }

  async deleteDevice(name: string): Promise<void> {
    if ((await this.#ip.link(checkDeviceName(name))) !== undefined) await this.#ip.deleteLink(name);
  }
}
