import { createHash } from 'node:crypto';
import { AgentError } from '../../../errors/index.js';
import { isValidInterfaceName, KernelParam, MechanismType, readParam } from '../../../api/index.js';
import type { Connection, Mechanism } from '../../../api/index.js';
import { parseNetnsRef } from '../../../host/index.js';
import type { NetnsRef } from '../../../host/index.js';
import type { HostLocalEntry, NetnsLocalEntry } from '../../desired-state.js';
import type { ConnectionSide, ForwarderEntries } from '../entries.js';
import { farPrefixes, sideAddresses } from '../entries.js';

export interface KernelOptions {
  readonly forwarder: ForwarderEntries;
}

export const kernelType = MechanismType.KERNEL;

/**
 * Where the workload lives, from the KERNEL mechanism's `inodeURL`: absent or empty is the host's
 * own netns (a host process); `file:///proc/<pid>/ns/net` or a `/var/run/netns/<name>` path is a
 * workload netns. `inode://` (an fd passed over a unix socket) is not supported (DESIGN.md §6).
 */
export function workloadNetnsOf(m: Mechanism): NetnsRef | undefined {
  const url = readParam(m, KernelParam.NETNS_URL);
  if (url === undefined || url === '') return undefined;
  const bad = (why: string): AgentError =>
    new AgentError(
      'INVALID_ARGUMENT',
      `KERNEL mechanism: inodeURL ${JSON.stringify(url.slice(0, 80))} ${why}`,
      {
        hint: 'pass the workload netns as file:///proc/<pid>/ns/net or /var/run/netns/<name>, or leave inodeURL out for the host netns',
        details: { mechanism: 'KERNEL', parameter: KernelParam.NETNS_URL },
      },
    );
  if (!url.startsWith('file://') && !url.startsWith('/'))
    throw bad('is not a file URL or an absolute path (fd passing is not supported)');
  if (/\/proc\/(thread-)?self\//.test(url))
    throw bad('names the sender’s own netns, which this agent cannot open');
  const ref = parseNetnsRef(url);
  if (ref.kind === 'path') throw bad('is neither /proc/<pid>/ns/net nor /var/run/netns/<name>');
  return ref;
}

/** The interface name: the mechanism's `name`, else `nsm-` and 6 hex of the connection id. */
export function interfaceNameOf(m: Mechanism, connId: string): string {
  const name = readParam(m, KernelParam.INTERFACE_NAME);
  if (name === undefined || name === '') return defaultInterfaceName(connId);
  if (!isValidInterfaceName(name)) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `KERNEL mechanism: interface name ${JSON.stringify(name.slice(0, 32))} is not valid`,
      {
        hint: 'use 1 to 15 characters without "/", ":" or blanks',
        details: { mechanism: 'KERNEL', parameter: KernelParam.INTERFACE_NAME },
      },
    );
  }
  return name;
}

export function defaultInterfaceName(connId: string): string {
  return `nsm-${createHash('sha256').update(connId).digest('hex').slice(0, 6)}`;
}

/** The local side for a connection on `side`, from its mechanism and IP context. */
export function localEntry(
  m: Mechanism,
  conn: Connection,
  side: ConnectionSide,
): HostLocalEntry | NetnsLocalEntry {
  const ip = conn.context?.ipContext;
  const addresses = sideAddresses(ip, side);
  const netns = workloadNetnsOf(m);
  if (netns === undefined) return { kind: 'host', addresses };
  return {
    kind: 'netns',
    netns,
    ifName: interfaceNameOf(m, conn.id),
    addresses,
    routes: farPrefixes(ip, side),
  };
}
