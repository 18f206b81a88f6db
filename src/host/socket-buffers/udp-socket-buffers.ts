/**
 * The port that sizes another process's UDP socket buffers (wireguard-go's). Real: the native helper
 * (native-udp-socket-buffers.ts, pidfd_getfd + SO_RCVBUFFORCE); tests: src/host/fake.
 */
export interface UdpSocketBuffer {
  /** The descriptor number in the target process. */
  readonly fd: number;
  readonly family: 4 | 6;
  /** SO_RCVBUF / SO_SNDBUF as the kernel reports them (twice the value set), bytes. */
  readonly rcvbuf: number;
  readonly sndbuf: number;
  /** True when this call raised the buffers. */
  readonly changed: boolean;
}

export interface UdpSocketBuffers {
  /**
   * The UDP sockets of `pid`; each one whose buffers are below `bytes` gets SO_RCVBUF and SO_SNDBUF
   * of `bytes` (the kernel then reports twice that). `bytes` 0 only reads. Idempotent. Throws an
   * AgentError whose hint says what to change when the host does not permit it.
   */
  ensure(pid: number, bytes: number): Promise<readonly UdpSocketBuffer[]>;
}

/**
 * 4 MiB: the benchmark (bench/results/dataplane-knobs-round5-buffer-sizes.txt) found 2–8 MiB equal,
 * ~1.5× the throughput of the 208 KiB default and no receive-buffer drops; 1 MiB still drops.
 */
export const defaultUdpBufferBytes = 4 * 1024 * 1024;
