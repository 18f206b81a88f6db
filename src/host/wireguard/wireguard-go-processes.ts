import { readdir, readFile } from 'node:fs/promises';

/** A running wireguard-go process and the device it serves. */
export interface WireGuardGoProcess {
  readonly pid: number;
  readonly device: string;
}

/**
 * The wireguard-go processes on this machine, found in /proc: their command line is
 * `wireguard-go [-f] <device>` whatever netns they run in (`ip netns exec` execs, it does not fork).
 * This is how a restarted agent, or the test bed's `down`, finds processes it did not start itself.
 */
export async function listWireGuardGoProcesses(procDir = '/proc'): Promise<WireGuardGoProcess[]> {
  const out: WireGuardGoProcess[] = [];
  for (const entry of await readdir(procDir)) {
    if (!/^\d+$/.test(entry)) continue;
    let cmdline: string;
    try {
      cmdline = await readFile(`${procDir}/${entry}/cmdline`, 'utf8');
    } catch {
      continue; // exited while we looked
    }
    const argv = cmdline.split('\0').filter((a) => a !== '');
    const device = parseWireGuardGoArgv(argv);
    if (device !== undefined) out.push({ pid: Number(entry), device });
  }
  return out;
}

/** The device name of a wireguard-go command line, or undefined when it is not one. */
export function parseWireGuardGoArgv(argv: readonly string[]): string | undefined {
  const [exe, ...args] = argv;
  if (exe === undefined || !/(^|\/)wireguard-go$/.test(exe)) return undefined;
  const device = args.filter((a) => !a.startsWith('-')).at(-1);
  return device;
}
