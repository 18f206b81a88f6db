import { access, constants } from 'node:fs/promises';
import { AgentError } from '../../errors/index.js';
import type { CommandRunner } from '../command-runner.js';
import { systemRandom } from '../random.js';
import type { Random } from '../random.js';

export type DetectedBackend = 'kernel' | 'userspace';

export interface DetectBackendOptions {
  readonly runner: CommandRunner;
  /** What the config asks for; `auto` (default) prefers the kernel. */
  readonly preference?: 'auto' | 'kernel' | 'userspace';
  readonly wireguardGo?: string;
  readonly tunDevice?: string;
  /** Whether a path exists and can be opened read-write; a port for tests. */
  readonly canOpen?: (path: string) => Promise<boolean>;
  readonly random?: Random;
}

/** What detection found, for `doctor` as well as for choosing. */
export interface BackendProbe {
  readonly kernel: boolean;
  /** `ip link add` stderr when the kernel module is missing ("Unknown device type"). */
  readonly kernelError?: string;
  readonly wireguardGo: boolean;
  readonly wireguardGoVersion?: string;
  readonly tun: boolean;
}

const kernelFix = 'load the kernel module (modprobe wireguard; in mainline Linux since 5.6)';
const userspaceFix =
  'install wireguard-go (apt install wireguard-go) and make /dev/net/tun available (modprobe tun)';

/** Looks at the host: can it make a kernel WireGuard link, is wireguard-go there, is there a TUN device. */
export async function probeBackends(o: DetectBackendOptions): Promise<BackendProbe> {
  // A throwaway link proves the kernel module works (it may be loaded on demand); it is deleted at once.
  const probe = `nsmwgp${Buffer.from((o.random ?? systemRandom).bytes(4)).toString('hex')}`;
  const add = await o.runner.run(['ip', 'link', 'add', probe, 'type', 'wireguard']);
  if (add.code === 0) await o.runner.run(['ip', 'link', 'del', probe]);
  let wireguardGoVersion: string | undefined;
  try {
    const v = await o.runner.run([o.wireguardGo ?? 'wireguard-go', '--version'], { timeoutMs: 5_000 });
    if (v.code === 0) wireguardGoVersion = /v\d[\w.]*/.exec(v.stdout)?.[0] ?? 'unknown';
  } catch {
    // not installed
  }
  const tun = await (o.canOpen ?? canOpenRw)(o.tunDevice ?? '/dev/net/tun');
  return {
    kernel: add.code === 0,
    ...(add.code === 0 ? {} : { kernelError: add.stderr.trim() }),
    wireguardGo: wireguardGoVersion !== undefined,
    ...(wireguardGoVersion === undefined ? {} : { wireguardGoVersion }),
    tun,
  };
}

/** Chooses the backend: kernel when it works (and is allowed), else wireguard-go, else an error with the fix. */
export async function detectBackend(o: DetectBackendOptions): Promise<DetectedBackend> {
  const p = await probeBackends(o);
  return chooseBackend(p, o.preference ?? 'auto');
}

export function chooseBackend(p: BackendProbe, preference: 'auto' | 'kernel' | 'userspace'): DetectedBackend {
  const userspaceOk = p.wireguardGo && p.tun;
  if (preference !== 'userspace' && p.kernel) return 'kernel';
  if (preference === 'kernel') {
    throw new AgentError(
      'FAILED_PRECONDITION',
      `kernel WireGuard is not available (${p.kernelError ?? 'unknown error'})`,
      {
        hint: `${kernelFix}, or set wireguard.backend to "auto" or "userspace"`,
      },
    );
  }
  if (userspaceOk) return 'userspace';
  const missing = [
    !p.wireguardGo ? 'wireguard-go is not installed' : '',
    !p.tun ? '/dev/net/tun cannot be opened' : '',
  ].filter((s) => s !== '');
  throw new AgentError(
    'FAILED_PRECONDITION',
    `no WireGuard backend: the kernel has no WireGuard and ${missing.join(' and ')}`,
    { hint: preference === 'userspace' ? userspaceFix : `${kernelFix}, or ${userspaceFix}` },
  );
}

async function canOpenRw(path: string): Promise<boolean> {
  try {
    await access(path, constants.R_OK | constants.W_OK);
    return true;
  } catch {
    return false;
  }
}
