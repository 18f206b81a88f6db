import { AgentError } from '../../errors/index.js';
import { publicKeyOf } from '../wireguard/keys.js';
import type { WireGuardKey } from '../wireguard/keys.js';
import { checkDeviceName } from '../wireguard/wireguard.js';
import type {
  ConfigureOptions,
  DeviceConfig,
  DeviceState,
  PeerState,
  WireGuard,
} from '../wireguard/wireguard.js';

interface MemoryDevice {
  config: DeviceConfig;
  peers: Map<WireGuardKey, PeerState>;
}

export type MemoryWireGuardOp = 'ensureDevice' | 'configure' | 'show' | 'deleteDevice';

/**
 * An in-memory WireGuard with the semantics of the real backends (peers replace their allowed IPs,
 * replacePeers drops the others, configure on a missing device fails, delete is idempotent), for
 * forwarder and chain tests. `ops` records each mutating call; failNext() injects a failure.
 */
export class MemoryWireGuard implements WireGuard {
  readonly backend = 'memory' as const;
  readonly ops: string[] = [];
  readonly #devices = new Map<string, MemoryDevice>();
  readonly #failures: { op: MemoryWireGuardOp; error: Error }[] = [];

  /** The next call of `op` throws `error` (default: an EXEC_FAILED AgentError) and changes nothing. */
  failNext(op: MemoryWireGuardOp, error?: Error): this {
    this.#failures.push({ op, error: error ?? new AgentError('EXEC_FAILED', `injected ${op} failure`) });
    return this;
  }

  /** Names of the devices that exist. */
  get devices(): string[] {
    return [...this.#devices.keys()];
  }

  /** The config a device was last given (tests check key, port, MTU). */
  deviceConfig(name: string): DeviceConfig | undefined {
    return this.#devices.get(name)?.config;
  }

  /** Simulates traffic: sets a peer's handshake time and counters. */
  setPeerStats(
    name: string,
    publicKey: WireGuardKey,
    stats: Partial<Pick<PeerState, 'lastHandshakeMs' | 'rxBytes' | 'txBytes'>>,
  ): void {
    const peer = this.#device(name).peers.get(publicKey);
    if (!peer) throw new AgentError('NOT_FOUND', `no peer ${publicKey} on ${name}`);
    this.#device(name).peers.set(publicKey, { ...peer, ...stats });
  }

  ensureDevice(name: string, config: DeviceConfig): Promise<void> {
    return this.#op(
      'ensureDevice',
      `ensureDevice ${name} port=${config.listenPort} mtu=${config.mtu ?? 1420}`,
      () => {
        checkDeviceName(name);
        publicKeyOf(config.privateKey); // validates the key like the real backends
        const d = this.#devices.get(name);
        if (d) d.config = config;
        else this.#devices.set(name, { config, peers: new Map() });
      },
    );
  }

  configure(name: string, o: ConfigureOptions): Promise<void> {
    const summary = `configure ${name} peers=${o.peers.map((p) => `${p.publicKey.slice(0, 8)}[${p.allowedIps.join(',')}]`).join(';')}${o.replacePeers === true ? ' replace' : ''}${o.removePeers?.length ? ` remove=${o.removePeers.map((k) => k.slice(0, 8)).join(',')}` : ''}`;
    return this.#op('configure', summary, () => {
      const d = this.#device(name);
      if (o.replacePeers === true) {
        const keep = new Set(o.peers.map((p) => p.publicKey));
        for (const k of d.peers.keys()) if (!keep.has(k)) d.peers.delete(k);
      }
      for (const k of o.removePeers ?? []) d.peers.delete(k);
      for (const p of o.peers) {
        const old = d.peers.get(p.publicKey);
        const endpoint = p.endpoint ?? old?.endpoint;
        d.peers.set(p.publicKey, {
          publicKey: p.publicKey,
          ...(endpoint === undefined ? {} : { endpoint }),
          allowedIps: [...p.allowedIps],
          lastHandshakeMs: old?.lastHandshakeMs ?? 0,
          rxBytes: old?.rxBytes ?? 0,
          txBytes: old?.txBytes ?? 0,
          persistentKeepalive: p.persistentKeepalive ?? 0,
        });
      }
    });
  }

  show(name: string): Promise<DeviceState | undefined> {
    try {
      this.#takeFailure('show');
    } catch (e: unknown) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
    const d = this.#devices.get(name);
    if (!d) return Promise.resolve(undefined);
    return Promise.resolve({
      name,
      publicKey: publicKeyOf(d.config.privateKey),
      listenPort: d.config.listenPort,
      peers: [...d.peers.values()],
    });
  }

  deleteDevice(name: string): Promise<void> {
    return this.#op('deleteDevice', `deleteDevice ${name}`, () => {
      this.#devices.delete(name);
    });
  }

  #device(name: string): MemoryDevice {
    const d = this.#devices.get(name);
    if (!d) {
      throw new AgentError('NOT_FOUND', `WireGuard device ${name} does not exist`, {
        hint: 'ensureDevice() it first',
      });
    }
    return d;
  }

  #op(op: MemoryWireGuardOp, summary: string, apply: () => void): Promise<void> {
    try {
      this.#takeFailure(op);
      apply();
      this.ops.push(summary);
      return Promise.resolve();
    } catch (e: unknown) {
      return Promise.reject(e instanceof Error ? e : new Error(String(e)));
    }
  }

  #takeFailure(op: MemoryWireGuardOp): void {
    const i = this.#failures.findIndex((f) => f.op === op);
    if (i >= 0) {
      const [f] = this.#failures.splice(i, 1);
      if (f) throw f.error;
    }
  }
}
