import { AgentError } from '../../errors/index.js';
import { loadUdpBuffersAddon } from './native-addon.js';
import type { NativeAddonOptions, UdpBuffersAddon } from './native-addon.js';
import type { UdpSocketBuffer, UdpSocketBuffers } from './udp-socket-buffers.js';

const turnOff = 'or turn buffer sizing off (udpBufferBytes 0); wireguard-go then keeps its 208 KiB buffers';

/**
 * The real port: the native helper (native/udp-socket-buffers.c) loaded on first use. Needs root
 * (CAP_SYS_PTRACE for pidfd_getfd, CAP_NET_ADMIN for SO_RCVBUFFORCE), Yama ptrace_scope < 3 and
 * Linux >= 5.6; what is missing becomes an AgentError with the fix.
 */
export class NativeUdpSocketBuffers implements UdpSocketBuffers {
  readonly #o: NativeAddonOptions;
  #addon: Promise<UdpBuffersAddon> | undefined;

  constructor(options: NativeAddonOptions = {}) {
    this.#o = options;
  }

  async ensure(pid: number, bytes: number): Promise<readonly UdpSocketBuffer[]> {
    this.#addon ??= loadUdpBuffersAddon(this.#o);
    const addon = await this.#addon.catch((e: unknown) => {
      this.#addon = undefined; // a later call may find it built
      throw e;
    });
    try {
      return addon
        .udpBuffers(pid, bytes)
        .map((s) => ({ ...s, family: s.family === 6 ? (6 as const) : (4 as const) }));
    } catch (e: unknown) {
      throw nativeError(e, pid);
    }
  }
}

function nativeError(e: unknown, pid: number): AgentError {
  const err = e as { code?: string; syscall?: string; message?: string };
  const what = `cannot size the UDP buffers of pid ${pid}: ${err.message ?? String(e)}`;
  const details = { pid, errno: err.code ?? '', syscall: err.syscall ?? '' };
  switch (err.code) {
    case 'EPERM':
    case 'EACCES':
      return new AgentError('PERMISSION_DENIED', what, {
        cause: e,
        details,
        hint:
          err.syscall === 'pidfd_getfd'
            ? `the agent needs ptrace access to wireguard-go: run it as root with CAP_SYS_PTRACE and kernel.yama.ptrace_scope below 3 (sysctl kernel.yama.ptrace_scope=1), ${turnOff}`
            : `run the agent as root (CAP_NET_ADMIN), ${turnOff}`,
      });
    case 'ENOSYS':
      return new AgentError('FAILED_PRECONDITION', what, {
        cause: e,
        details,
        hint: `pidfd_getfd needs Linux 5.6 or newer (uname -r); upgrade the kernel, use kernel WireGuard, ${turnOff}`,
      });
    case 'ESRCH':
    case 'ENOENT':
      return new AgentError('NOT_FOUND', what, {
        cause: e,
        details,
        hint: 'the process exited; the next apply sizes the buffers of the new one',
      });
    default:
      return new AgentError('EXEC_FAILED', what, { cause: e, details, hint: turnOff });
  }
}
