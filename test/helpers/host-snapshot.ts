// What the data-plane tests may leave behind, read from the machine: compared before and after a
// test to prove it leaked nothing (namespaces, wireguard-go processes, UAPI sockets, root links).
import { readdir } from 'node:fs/promises';
import { ProcessRunner } from '../../src/host/command-runner.js';
import { Ip } from '../../src/host/ip/index.js';
import { Netns } from '../../src/host/netns.js';
import { defaultSocketDir, listWireGuardGoProcesses } from '../../src/host/wireguard/index.js';

export interface HostSnapshot {
  readonly netns: readonly string[];
  readonly wireguardGo: readonly string[];
  readonly sockets: readonly string[];
  readonly rootLinks: readonly string[];
}

/** Names the test bed gives (`<prefix>-br`, `<prefix>-h3`, `<prefix>-h3-wg`, `<prefix>-h3-wg.sock`). */
const testbedName = /^[a-z][a-z0-9]{0,7}-(br|h\d+)(-wg)?(\.sock)?$/;

/**
 * The machine's state. With a prefix: only that test bed's names. Without: everything except
 * test-bed names, since other test files run their own beds at the same time (ava runs files in
 * parallel); each test checks its own prefix comes back empty.
 */
export async function hostSnapshot(prefix?: string): Promise<HostSnapshot> {
  const runner = new ProcessRunner();
  const mine = (n: string): boolean =>
    prefix === undefined ? !testbedName.test(n) : n.startsWith(`${prefix}-`);
  return {
    netns: (await new Netns(runner).list()).filter(mine).sort(),
    wireguardGo: (await listWireGuardGoProcesses())
      .map((p) => p.device)
      .filter(mine)
      .sort(),
    sockets: (await readdir(defaultSocketDir).catch(() => [] as string[])).filter(mine).sort(),
    rootLinks: (await new Ip(runner).links())
      .map((l) => l.name)
      .filter((n) => prefix === undefined || n.startsWith(`${prefix}-`))
      .sort(),
  };
}

export interface NetnsSnapshot {
  /** `name kind` of every link. */
  readonly links: readonly string[];
  /** `dev cidr` of every address except IPv6 link-local ones (their EUI-64 changes with each veth). */
  readonly addresses: readonly string[];
  /** Every route in every table, as `ip route` would print its main fields. */
  readonly routes: readonly string[];
}

/** The interfaces, addresses and routes inside one named netns, sorted, for before/after comparisons. */
export async function netnsSnapshot(netns: string): Promise<NetnsSnapshot> {
  const ip = new Ip(new ProcessRunner(), { netns });
  // `table all` lists both address families.
  const routes = await ip.routes({ table: 'all' });
  return {
    links: (await ip.links()).map((l) => `${l.name} ${l.kind ?? '-'}`).sort(),
    addresses: (await ip.addresses())
      .filter((a) => !a.cidr.startsWith('fe80:'))
      .map((a) => `${a.dev} ${a.cidr}`)
      .sort(),
    routes: routes
      .filter((r) => !r.dst.startsWith('fe80:') && !(r.type === 'multicast' && r.dst === 'ff00::/8'))
      .map((r) =>
        [
          r.dst,
          r.gateway && `via ${r.gateway}`,
          r.dev && `dev ${r.dev}`,
          r.table && `table ${r.table}`,
          r.protocol && `proto ${r.protocol}`,
        ]
          .filter((x) => x !== undefined && x !== '')
          .join(' '),
      )
      .sort(),
  };
}
