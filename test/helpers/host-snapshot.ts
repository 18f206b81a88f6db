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

/** The machine's state, limited to names starting with `prefix` when one is given. */
export async function hostSnapshot(prefix = ''): Promise<HostSnapshot> {
  const runner = new ProcessRunner();
  const mine = (n: string): boolean => n.startsWith(prefix);
  return {
    netns: (await new Netns(runner).list()).filter(mine).sort(),
    wireguardGo: (await listWireGuardGoProcesses())
      .map((p) => p.device)
      .filter(mine)
      .sort(),
    sockets: (await readdir(defaultSocketDir).catch(() => [] as string[])).filter(mine).sort(),
    rootLinks: (await new Ip(runner).links()).map((l) => l.name).sort(),
  };
}
