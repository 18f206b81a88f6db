import { mkdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { AgentError, describe } from '../../errors/index.js';
import { Forwarder, wireguardMtu } from '../../forwarder/index.js';
import type { ApplyResult, DesiredEntry, DeviceSpec } from '../../forwarder/index.js';
import type { ForwarderEntries } from '../../forwarder/mechanisms/index.js';
import {
  IpBatchRunner,
  ProcessRunner,
  runPeriodically,
  SECRET_FILE_MODE,
  writeFileAtomic,
} from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import {
  createWireGuard,
  detectBackend,
  generatePrivateKey,
  isWireGuardKey,
  publicKeyOf,
} from '../../host/wireguard/index.js';
import type { DeviceState, WireGuard, WireGuardKey } from '../../host/wireguard/index.js';
import type { Logger } from '../../log/index.js';
import type { ChainContext } from '../../chain/index.js';
import type { Journal } from './journal.js';

export interface DataplaneOptions {
  readonly stateDir: string;
  readonly interfaceName: string;
  readonly listenPort: number;
  readonly backend: 'auto' | 'kernel' | 'userspace';
  readonly journal: Journal;
  readonly log: Logger;
}

/**
 * The agent's data plane: one WireGuard device with a key kept in the state dir (so a restart keeps
 * the same public key and peers keep working), the forwarder that owns it, and the mechanism
 * elements' view of the forwarder's entries — journaled, so a restart adopts them.
 */
export class Dataplane implements ForwarderEntries {
  readonly forwarder: Forwarder;
  readonly wireguard: WireGuard;
  readonly backend: 'kernel' | 'userspace';
  readonly device: DeviceSpec;
  readonly publicKey: WireGuardKey;
  readonly #journal: Journal;
  readonly #ipRunner: IpBatchRunner;

  private constructor(o: {
    forwarder: Forwarder;
    ipRunner: IpBatchRunner;
    wireguard: WireGuard;
    backend: 'kernel' | 'userspace';
    device: DeviceSpec;
    journal: Journal;
  }) {
    this.forwarder = o.forwarder;
    this.wireguard = o.wireguard;
    this.backend = o.backend;
    this.device = o.device;
    this.publicKey = publicKeyOf(o.device.privateKey);
    this.#journal = o.journal;
    this.#ipRunner = o.ipRunner;
  }

  /**
   * Chooses the backend, loads (or makes) the device key, and adopts what the previous run left:
   * the device and every journaled entry stay as they are (no command runs when nothing changed);
   * anything of ours no entry claims is removed.
   */
  static async open(o: DataplaneOptions): Promise<Dataplane> {
    const runner = new ProcessRunner();
    const backend = await detectBackend({ runner, preference: o.backend });
    const log = o.log.child({ subsystem: 'forwarder' });
    const wireguard = createWireGuard(backend, { runner, log, logDir: join(o.stateDir, 'wireguard') });
    const privateKey = await deviceKey(o.stateDir);
    const device: DeviceSpec = {
      name: o.interfaceName,
      privateKey,
      listenPort: o.listenPort,
      mtu: wireguardMtu(1500),
    };
    // The forwarder's `ip -batch` reads and changes go to kept `ip` processes (close() stops them).
    const ipRunner = new IpBatchRunner({ inner: runner, log });
    const forwarder = new Forwarder({ runner: ipRunner, wireguard, stateDir: o.stateDir, log });
    let result: ApplyResult;
    try {
      result = await forwarder.adopt({ device, entries: Object.fromEntries(o.journal.data.entries) });
    } catch (e: unknown) {
      await ipRunner.close();
      throw e;
    }
    log.info(
      {
        backend,
        device: device.name,
        entries: o.journal.data.entries.size,
        ops: result.ops.length,
        ms: Math.round(result.ms),
      },
      result.ops.length === 0 ? 'data plane adopted as it was' : 'data plane adopted',
    );
    return new Dataplane({ forwarder, ipRunner, wireguard, backend, device, journal: o.journal });
  }

  /**
   * Stops the forwarder's kept `ip` processes (an apply in flight still finishes; a later one starts
   * its own process). The data plane itself stays as it is, for the next start to adopt.
   */
  close(): Promise<void> {
    return this.#ipRunner.close();
  }

  entry(key: string): DesiredEntry | undefined {
    return this.forwarder.entry(key);
  }

  /**
   * Applies, then journals (awaited: a connection reported up survives a kill -9 right after) —
   * unless `ctx` is a request whose edge writes the journal (journalAtEdge).
   */
  setEntry(key: string, entry: DesiredEntry | undefined, ctx?: ChainContext): Promise<unknown> {
    return this.setEntries(new Map([[key, entry]]), ctx);
  }

  /** Several entries in one apply, then one journal write (or the request edge's). */
  async setEntries(
    entries: ReadonlyMap<string, DesiredEntry | undefined>,
    ctx?: ChainContext,
  ): Promise<unknown> {
    const result = await this.forwarder.setEntries(entries);
    for (const [key, entry] of entries) {
      if (entry === undefined) this.#journal.data.entries.delete(key);
      else this.#journal.data.entries.set(key, entry);
    }
    await this.#journal.flushUnlessAtEdge(ctx);
    return result;
  }

  /**
   * Repairs drift every `everyMs`: the whole desired state is applied again, which only reads the
   * host when it is as it should be, and puts back what something else removed — a wireguard-go
   * that died, an address or route deleted by hand — without waiting for a connection to change.
   */
  keepReconciled(clock: Clock, log: Logger, everyMs = RECONCILE_MS): { stop(): Promise<void> } {
    return runPeriodically(
      clock,
      async () => {
        try {
          const r = await this.forwarder.reapply();
          if (r.ops.length > 0) {
            log.warn(
              { ops: r.ops.length, ms: Math.round(r.ms) },
              'the data plane had drifted from what the connections need; repaired',
            );
          }
        } catch (e: unknown) {
          log.error({ err: describe(e) }, 'repairing the data plane failed; retrying');
        }
        return everyMs;
      },
      everyMs,
    );
  }

  /** Removes the entries of `keys` (a served connection whose client never came back). */
  async removeEntries(keys: readonly string[]): Promise<void> {
    for (const key of keys) if (this.entry(key) !== undefined) await this.setEntry(key, undefined);
  }

  /** The device as the kernel/wireguard-go reports it (handshakes, transfer), or undefined. */
  async show(): Promise<DeviceState | undefined> {
    try {
      return await this.wireguard.show(this.device.name);
    } catch (e: unknown) {
      throw AgentError.wrap(e, 'UNAVAILABLE', `cannot read WireGuard device ${this.device.name}`);
    }
  }
}

const RECONCILE_MS = 10_000;

/** `<stateDir>/wireguard/private.key` (0600), made on first start. */
async function deviceKey(stateDir: string): Promise<WireGuardKey> {
  const dir = join(stateDir, 'wireguard');
  const path = join(dir, 'private.key');
  try {
    const text = (await readFile(path, 'utf8')).trim();
    if (!isWireGuardKey(text)) {
      throw new AgentError('FAILED_PRECONDITION', `${path} does not hold a WireGuard private key`, {
        hint: `remove it to have the agent make a new one (peers then re-learn the key on their next refresh): rm ${path}`,
      });
    }
    return text;
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
      if (AgentError.is(e)) throw e;
      throw new AgentError('FAILED_PRECONDITION', `cannot read ${path}: ${describe(e)}`, { cause: e });
    }
  }
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = generatePrivateKey();
  await writeFileAtomic(path, `${key}\n`, SECRET_FILE_MODE);
  return key;
}
