import type { NetnsRef } from '../host/index.js';
import type { PeerConfig } from '../host/wireguard/index.js';
import type { DeviceSpec } from './desired-state.js';
import { netnsKey } from './desired-state.js';

/** The netns an operation runs in: the host's, or a workload's. */
export type Where = { readonly kind: 'host' } | { readonly kind: 'workload'; readonly netns: NetnsRef };

export const onHost: Where = { kind: 'host' };

/** What an `ip -batch` op changes; the plan emits them in the safe order of DESIGN.md §4. */
export type BatchStage =
  | 'links'
  | 'addresses'
  | 'proxies'
  | 'routes'
  | 'remove-routes'
  | 'remove-proxies'
  | 'remove-addresses'
  | 'remove-links';

/**
 * One step of an apply, in order: create device → peers → links/veths → addresses → routes; then
 * removals in reverse (routes → addresses → links → peers → device). Pure data, so the plan is
 * unit-tested without a host and each op is a crash point for the tests.
 */
export type ForwarderOp =
  | { readonly op: 'device-ensure'; readonly device: DeviceSpec }
  | {
      readonly op: 'device-link';
      readonly name: string;
      readonly mtu?: number;
      readonly up?: boolean;
    }
  | { readonly op: 'peers-set'; readonly device: string; readonly peers: readonly PeerConfig[] }
  | {
      readonly op: 'ip-batch';
      readonly where: Where;
      readonly stage: BatchStage;
      /** Each command is the words after `ip`. */
      readonly commands: readonly (readonly string[])[];
    }
  | { readonly op: 'peers-remove'; readonly device: string; readonly keys: readonly string[] }
  | { readonly op: 'device-delete'; readonly name: string };

/** One line per op for logs and step hooks; never a private key. */
export function describeOp(op: ForwarderOp): string {
  switch (op.op) {
    case 'device-ensure':
      return `device-ensure ${op.device.name} port=${op.device.listenPort} mtu=${op.device.mtu}`;
    case 'device-link':
      return `device-link ${op.name}${op.mtu === undefined ? '' : ` mtu=${op.mtu}`}${op.up === true ? ' up' : ''}`;
    case 'peers-set':
      return `peers-set ${op.device} ${op.peers.map((p) => `${p.publicKey.slice(0, 8)}[${p.allowedIps.join(',')}]`).join(' ')}`;
    case 'ip-batch':
      return `ip-batch ${whereLabel(op.where)} ${op.stage} (${op.commands.length})`;
    case 'peers-remove':
      return `peers-remove ${op.device} ${op.keys.map((k) => k.slice(0, 8)).join(',')}`;
    case 'device-delete':
      return `device-delete ${op.name}`;
  }
}

export function whereLabel(w: Where): string {
  return w.kind === 'host' ? 'host' : netnsKey(w.netns);
}
