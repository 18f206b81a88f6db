#!/usr/bin/env python3
"""Benchmark-only probe: gives the UDP sockets of a running process bigger buffers.

Usage: force-socket-buffers.py <pid> <bytes>

Debian's wireguard-go (0.0.20220316) never sets SO_RCVBUF/SO_SNDBUF, so its sockets get
net.core.rmem_default (208 KiB); that sysctl is global (read-only inside a netns on Linux 6.x), and
the benchmark must not change the root namespace. Newer wireguard-go asks for 7 MiB itself with
SO_RCVBUFFORCE. To measure what that is worth here, this copies each UDP socket of <pid> with
pidfd_getfd(2) (Linux >= 5.6, needs root) and sets SO_RCVBUFFORCE/SO_SNDBUFFORCE on the copy, which
changes the one socket both descriptors refer to. Prints one line per socket changed.
"""
import ctypes
import os
import socket
import sys

SYS_PIDFD_OPEN = 434
SYS_PIDFD_GETFD = 438
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

libc = ctypes.CDLL(None, use_errno=True)


def syscall(nr: int, *args: int) -> int:
    r = libc.syscall(nr, *[ctypes.c_long(a) for a in args])
    if r < 0:
        e = ctypes.get_errno()
        raise OSError(e, os.strerror(e))
    return r


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    pid, size = int(sys.argv[1]), int(sys.argv[2])
    pidfd = syscall(SYS_PIDFD_OPEN, pid, 0)
    changed = 0
    try:
        for name in os.listdir(f"/proc/{pid}/fd"):
            try:
                if not os.readlink(f"/proc/{pid}/fd/{name}").startswith("socket:"):
                    continue
            except OSError:
                continue
            fd = syscall(SYS_PIDFD_GETFD, pidfd, int(name), 0)
            s = socket.socket(fileno=fd)
            try:
                if s.type != socket.SOCK_DGRAM or s.family not in (socket.AF_INET, socket.AF_INET6):
                    continue
                s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, size)
                s.setsockopt(socket.SOL_SOCKET, SO_SNDBUFFORCE, size)
                rcv = s.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF)
                snd = s.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                print(f"pid {pid} fd {name} {s.family.name}: SO_RCVBUF {rcv} SO_SNDBUF {snd}")
                changed += 1
            finally:
                s.close()
    finally:
        os.close(pidfd)
    if changed == 0:
        print(f"pid {pid}: no UDP socket found", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
