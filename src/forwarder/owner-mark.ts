import { createHash } from 'node:crypto';
import { AgentError } from '../errors/index.js';

/**
 * How the forwarder tells what it owns from everything else on the host (DESIGN.md §4): links it
 * makes are named `<prefix><8 hex>`, its routes carry its own route protocol number, and the record
 * in the state dir names its WireGuard devices and the workload namespaces it touched. Nothing
 * without one of these marks is ever changed or removed.
 */
export interface OwnerMark {
  /** Name prefix of the links the forwarder creates; 1–7 characters so `<prefix><8 hex>` fits in 15. */
  readonly prefix: string;
  /** `proto` of every route the forwarder adds; 0–255, not one of the kernel's own (0–4). */
  readonly proto: number;
}

/** `nsm` links and route protocol 252 (unassigned in iproute2's rt_protos, above the kernel's own). */
export const defaultOwnerMark: OwnerMark = { prefix: 'nsm', proto: 252 };

export function checkOwnerMark(mark: OwnerMark): OwnerMark {
  if (!/^[a-z][a-z0-9-]{0,6}$/.test(mark.prefix)) {
    throw new AgentError(
      'CONFIG_INVALID',
      `forwarder link prefix ${JSON.stringify(mark.prefix)} is not valid`,
      {
        hint: 'use 1 to 7 lowercase letters, digits or "-", starting with a letter (default "nsm")',
      },
    );
  }
  if (!Number.isInteger(mark.proto) || mark.proto < 5 || mark.proto > 255) {
    throw new AgentError('CONFIG_INVALID', `forwarder route protocol ${mark.proto} is not 5..255`, {
      hint: 'pick a route protocol number nothing else on the host uses (default 252)',
    });
  }
  return mark;
}

/** The host-side name of the veth that serves one entry: stable, so a restart finds it again. */
export function ownedLinkName(mark: OwnerMark, entryKey: string): string {
  return `${mark.prefix}${createHash('sha256').update(entryKey).digest('hex').slice(0, 8)}`;
}

/** True for a link name the forwarder made (`<prefix><8 hex>`). */
export function isOwnedLinkName(mark: OwnerMark, name: string): boolean {
  return (
    name.length === mark.prefix.length + 8 &&
    name.startsWith(mark.prefix) &&
    /^[0-9a-f]{8}$/.test(name.slice(mark.prefix.length))
  );
}

/**
 * The link group the forwarder moves links into right before deleting them all with one
 * `ip link del group` (one kernel teardown instead of one per veth: 200 veths in ~0.1 s, not 4 s).
 * Used only when every link in that group is one being deleted.
 */
export function removalGroup(mark: OwnerMark): number {
  return 0x6e736d00 + mark.proto;
}
