// A fake host for forwarder unit tests: a CommandRunner that keeps links, addresses, routes and
// proxy neighbours per netns and answers the `ip` commands the forwarder runs (listings in -json,
// changes one by one or through `ip -batch -`), recording every argv; and a WireGuard that keeps
// its devices in a MemoryWireGuard and adds their links to the fake host.
import type { CommandRunner, RunOptions, RunResult } from '../../../src/host/command-runner.js';
import { effectiveArgv } from '../../../src/host/command-runner.js';
import { MemoryWireGuard } from '../../../src/host/fake/index.js';
import type {
  ConfigureOptions,
  DeviceConfig,
  DeviceState,
  WireGuard,
} from '../../../src/host/wireguard/index.js';

interface FakeLink {
  name: string;
  kind: string;
  mtu: number;
  up: boolean;
  addresses: string[];
  group?: string;
  /** The other end of a veth: its netns and name. */
  peer?: { ns: string; name: string };
}
interface FakeRoute {
  dst: string;
  dev: string;
  gateway?: string;
  proto: string;
}
interface FakeNetns {
  links: FakeLink[];
  routes: FakeRoute[];
  proxies: { dst: string; dev: string }[];
}

export class FakeHost implements CommandRunner {
  readonly calls: string[] = [];
  readonly netns = new Map<string, FakeNetns>();
  /** Fail the next command whose line contains this text. */
  failOn: string | undefined;

  constructor(names: readonly string[] = ['host']) {
    for (const n of names) this.addNetns(n);
  }

  addNetns(name: string): void {
    this.netns.set(name, {
      links: [{ name: 'lo', kind: '', mtu: 65536, up: true, addresses: ['127.0.0.1/8'] }],
      routes: [],
      proxies: [],
    });
  }

  ns(name: string): FakeNetns {
    const n = this.netns.get(name);
    if (n === undefined) throw new Error(`no netns ${name}`);
    return n;
  }

  /** Lines that change something (everything but listings). */
  get mutations(): string[] {
    return this.calls.filter((c) => !/ show( |$)/.test(c));
  }

  async runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const r = await this.run(argv, options);
    if (r.code !== 0) throw new Error(`${argv.join(' ')}: ${r.stderr}`);
    return r;
  }

  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    const full = [...effectiveArgv(argv, options.netns)];
    const line =
      full.join(' ') +
      (options.input === undefined ? '' : ` <<< ${options.input.trim().split('\n').join('; ')}`);
    this.calls.push(line);
    if (this.failOn !== undefined && line.includes(this.failOn)) {
      // In a batch, like ip: the lines before the failing one are applied, and it names that line.
      const lines = (options.input ?? '').split('\n').filter((x) => x !== '');
      const at = lines.findIndex((l) => l.includes(this.failOn ?? ''));
      this.failOn = undefined;
      if (at >= 0) {
        try {
          this.#exec(full, lines.slice(0, at).join('\n'));
        } catch {
          // reported below like the injected failure
        }
        return Promise.resolve({
          stdout: '',
          stderr: `injected failure\nCommand failed -:${at + 1}`,
          code: 1,
        });
      }
      return Promise.resolve({ stdout: '', stderr: 'injected failure', code: 1 });
    }
    try {
      return Promise.resolve({ stdout: this.#exec(full, options.input), stderr: '', code: 0 });
    } catch (e: unknown) {
      return Promise.resolve({ stdout: '', stderr: e instanceof Error ? e.message : String(e), code: 2 });
    }
  }

  #exec(argv: string[], input: string | undefined): string {
    let a = argv;
    let ns = 'host';
    if (a[0] === 'ip' && a[1] === 'netns' && a[2] === 'exec') {
      ns = a[3] ?? '';
      a = a.slice(4);
    }
    if (a[0] !== 'ip') throw new Error(`fake host runs only ip, not ${a[0] ?? ''}`);
    a = a.slice(1);
    if (a[0] === '-n') {
      ns = a[1] ?? '';
      a = a.slice(2);
    }
    if (!this.netns.has(ns))
      throw new Error(`Cannot open network namespace "${ns}": No such file or directory`);
    const words = a.filter((w) => w !== '-json' && w !== '-details');
    if (words[0] === '-batch') {
      // Like ip: listings print one line of JSON each, in order; changes print nothing.
      let out = '';
      for (const [i, l] of (input ?? '')
        .split('\n')
        .filter((x) => x !== '')
        .entries()) {
        try {
          const w = l.split(' ');
          if (w[1] === 'show') out += `${this.#show(ns, w)}\n`;
          else this.#change(ns, w);
        } catch (e: unknown) {
          throw new Error(`${e instanceof Error ? e.message : String(e)}\nCommand failed -:${i + 1}`, {
            cause: e,
          });
        }
      }
      return out;
    }
    if (words[1] === 'show') return this.#show(ns, words);
    this.#change(ns, words);
    return '';
  }

  #show(ns: string, words: string[]): string {
    if (words[0] === 'addr' && words[1] === 'show') {
      return JSON.stringify(
        this.ns(ns).links.map((l) => ({
          ifname: l.name,
          mtu: l.mtu,
          group: l.group ?? 'default',
          flags: l.up ? ['UP'] : [],
          operstate: l.up ? 'UP' : 'DOWN',
          ...(l.kind === '' ? {} : { linkinfo: { info_kind: l.kind } }),
          addr_info: l.addresses.map((c) => ({
            family: c.includes(':') ? 'inet6' : 'inet',
            local: c.split('/')[0],
            prefixlen: Number(c.split('/')[1]),
            scope: 'global',
          })),
        })),
      );
    }
    if (words[0] === 'route' && words[1] === 'show') {
      const proto = words[words.indexOf('proto') + 1];
      return JSON.stringify(
        this.ns(ns)
          .routes.filter((r) => r.proto === proto)
          .map((r) => ({
            dst: r.dst.endsWith('/32') ? r.dst.slice(0, -3) : r.dst,
            dev: r.dev,
            table: 'main',
            ...(r.gateway === undefined ? {} : { gateway: r.gateway }),
          })),
      );
    }
    if (words[0] === 'neigh' && words[1] === 'show')
      return JSON.stringify(this.ns(ns).proxies.map((p) => ({ ...p, proxy: null })));
    throw new Error(`fake host does not list 'ip ${words.join(' ')}'`);
  }

  /** Removes a link and what lives on it (as the kernel does). */
  dropLink(ns: string, name: string): void {
    const n = this.ns(ns);
    n.links = n.links.filter((l) => l.name !== name);
    n.routes = n.routes.filter((r) => r.dev !== name);
    n.proxies = n.proxies.filter((p) => p.dev !== name);
  }

  #change(ns: string, w: string[]): void {
    const n = this.ns(ns);
    const link = (name: string): FakeLink => {
      const l = n.links.find((x) => x.name === name);
      if (l === undefined) throw new Error(`Cannot find device "${name}"`);
      return l;
    };
    const arg = (k: string): string | undefined => (w.includes(k) ? w[w.indexOf(k) + 1] : undefined);
    const [obj, verb] = w;
    if (obj === 'link' && verb === 'add') {
      const name = w[2] ?? '';
      if (n.links.some((l) => l.name === name)) throw new Error('RTNETLINK answers: File exists');
      const peerAt = w.indexOf('peer');
      const mtu = Number(arg('mtu') ?? 1500);
      const peerName = w[peerAt + 2] ?? '';
      const peerNs = w.lastIndexOf('netns') > peerAt ? (w[w.lastIndexOf('netns') + 1] ?? ns) : ns;
      n.links.push({
        name,
        kind: arg('type') ?? '',
        mtu,
        up: false,
        addresses: [],
        ...(peerAt > 0 ? { peer: { ns: peerNs, name: peerName } } : {}),
      });
      if (peerAt > 0)
        this.ns(peerNs).links.push({
          name: peerName,
          kind: 'veth',
          mtu,
          up: false,
          addresses: [],
          peer: { ns, name },
        });
    } else if (obj === 'link' && verb === 'set') {
      const l = link(w[3] ?? '');
      if (w.includes('up')) l.up = true;
      if (w.includes('down')) l.up = false;
      const mtu = arg('mtu');
      if (mtu !== undefined) l.mtu = Number(mtu);
      const group = arg('group');
      if (group !== undefined) l.group = group;
    } else if (obj === 'link' && verb === 'del') {
      const names =
        w[2] === 'group' ? n.links.filter((l) => l.group === w[3]).map((l) => l.name) : [w[3] ?? ''];
      for (const name of names) {
        const peer = link(name).peer;
        this.dropLink(ns, name);
        if (peer !== undefined) this.dropLink(peer.ns, peer.name);
      }
    } else if (obj === 'ntable') {
      link(arg('dev') ?? '');
    } else if (obj === 'addr') {
      const l = link(arg('dev') ?? '');
      const cidr = w[2] ?? '';
      if (verb === 'del') {
        l.addresses = l.addresses.filter((c) => c !== cidr);
        // As Linux does (fib_disable_ip): the link's last IPv4 address takes every IPv4 route
        // through the link with it, whoever made it; IPv6 routes stay.
        if (!cidr.includes(':') && l.addresses.every((c) => c.includes(':')))
          n.routes = n.routes.filter((r) => r.dev !== l.name || r.dst.includes(':'));
      } else if (!l.addresses.includes(cidr)) l.addresses.push(cidr);
    } else if (obj === 'neigh') {
      const p = { dst: w[3] ?? '', dev: arg('dev') ?? '' };
      link(p.dev);
      n.proxies = n.proxies.filter((x) => !(x.dst === p.dst && x.dev === p.dev));
      if (verb === 'replace') n.proxies.push(p);
    } else if (obj === 'route') {
      const dst = w[2] ?? '';
      const exists = n.routes.some((r) => r.dst === dst);
      if (verb === 'del') {
        if (!exists) throw new Error('RTNETLINK answers: No such process');
        n.routes = n.routes.filter((r) => r.dst !== dst);
        return;
      }
      if (verb === 'add' && exists) throw new Error('RTNETLINK answers: File exists');
      const dev = arg('dev') ?? '';
      link(dev);
      const gateway = arg('via');
      n.routes = n.routes.filter((r) => r.dst !== dst);
      n.routes.push({
        dst,
        dev,
        proto: arg('proto') ?? 'boot',
        ...(gateway === undefined ? {} : { gateway }),
      });
    } else {
      throw new Error(`fake host does not know 'ip ${w.join(' ')}'`);
    }
  }
}

/** WireGuard devices in memory whose links appear in one netns of the fake host. */
export class FakeHostWireGuard implements WireGuard {
  readonly backend = 'memory' as const;
  readonly memory = new MemoryWireGuard();

  constructor(
    readonly host: FakeHost,
    readonly netns = 'host',
  ) {}

  get ops(): string[] {
    return this.memory.ops;
  }

  async ensureDevice(name: string, config: DeviceConfig): Promise<void> {
    await this.memory.ensureDevice(name, config);
    const n = this.host.ns(this.netns);
    const l = n.links.find((x) => x.name === name);
    if (l === undefined)
      n.links.push({ name, kind: 'tun', mtu: config.mtu ?? 1420, up: true, addresses: [] });
    else Object.assign(l, { mtu: config.mtu ?? 1420, up: true });
  }

  configure(name: string, options: ConfigureOptions): Promise<void> {
    return this.memory.configure(name, options);
  }

  show(name: string): Promise<DeviceState | undefined> {
    return this.memory.show(name);
  }

  async deleteDevice(name: string): Promise<void> {
    await this.memory.deleteDevice(name);
    const n = this.host.ns(this.netns);
    n.links = n.links.filter((l) => l.name !== name);
    n.routes = n.routes.filter((r) => r.dev !== name);
  }
}
