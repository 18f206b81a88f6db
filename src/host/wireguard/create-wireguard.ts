import type { CommandRunner } from '../command-runner.js';
import { KernelWireGuard } from './kernel-wireguard.js';
import { UserspaceWireGuard } from './userspace-wireguard.js';
import type { UserspaceWireGuardOptions } from './userspace-wireguard.js';
import type { WireGuard } from './wireguard.js';

export interface CreateWireGuardOptions extends Omit<UserspaceWireGuardOptions, 'runner'> {
  readonly runner: CommandRunner;
}

/** The real backend of a detected kind (see detectBackend). */
export function createWireGuard(kind: 'kernel' | 'userspace', options: CreateWireGuardOptions): WireGuard {
  if (kind === 'kernel') {
    return new KernelWireGuard({
      runner: options.runner,
      ...(options.netns === undefined ? {} : { netns: options.netns }),
    });
  }
  return new UserspaceWireGuard(options);
}
