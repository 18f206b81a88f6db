import { AgentError } from '../../errors/index.js';
import type { UdpSocketBuffer, UdpSocketBuffers } from '../socket-buffers/index.js';

/**
 * In-memory UDP sockets per pid, sized the way the kernel does (SO_RCVBUF reports twice the value
 * set; 208 KiB default). `refuse` makes every call fail as on a host without ptrace access.
 */
export class FakeUdpSocketBuffers implements UdpSocketBuffers {
  readonly sockets = new Map<number, { fd: number; family: 4 | 6; rcvbuf: number; sndbuf: number }[]>();
  readonly calls: { pid: number; bytes: number }[] = [];
  refuse: AgentError | undefined;

  /** Gives `pid` UDP sockets with the default buffers (what wireguard-go opens when its link is up). */
  addProcess(pid: number, families: readonly (4 | 6)[] = [4, 6]): void {
    this.sockets.set(
      pid,
      families.map((family, i) => ({ fd: 10 + i, family, rcvbuf: 212_992, sndbuf: 212_992 })),
    );
  }

  ensure(pid: number, bytes: number): Promise<readonly UdpSocketBuffer[]> {
    this.calls.push({ pid, bytes });
    if (this.refuse !== undefined) return Promise.reject(this.refuse);
    const list = this.sockets.get(pid);
    if (list === undefined) {
      return Promise.reject(new AgentError('NOT_FOUND', `pidfd_open: no process ${pid}`));
    }
    return Promise.resolve(
      list.map((s) => {
        const changed = bytes > 0 && (s.rcvbuf < 2 * bytes || s.sndbuf < 2 * bytes);
        if (changed) {
          s.rcvbuf = 2 * bytes;
          s.sndbuf = 2 * bytes;
        }
        return { ...s, changed };
      }),
    );
  }
}
