import { mkdir, open, readFile, rename } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { AgentError } from '../errors/index.js';
import type { NetnsRef } from '../host/index.js';
import type { DesiredState } from './desired-state.js';
import { netnsKey } from './desired-state.js';
import type { OwnerMark } from './owner-mark.js';

/**
 * The forwarder's record in the state dir (`<stateDir>/forwarder/state.json`): which WireGuard
 * devices and which workload netns it may have changed. Written atomically before an apply (what
 * it had plus what it is about to make) and after it (exactly what it made), so after a crash at any
 * instant the next start knows where to look for leftovers. No keys: private keys never go here.
 */
export interface StateRecord {
  readonly version: 1;
  readonly mark: OwnerMark;
  readonly devices: readonly string[];
  readonly netns: readonly NetnsRef[];
}

export function emptyRecord(mark: OwnerMark): StateRecord {
  return { version: 1, mark, devices: [], netns: [] };
}

/** What the record says about a desired state once it is applied (made once per state object). */
export function recordOf(desired: DesiredState, mark: OwnerMark): StateRecord {
  const known = records.get(desired);
  if (known?.mark === mark) return known;
  const record = buildRecord(desired, mark);
  records.set(desired, record);
  return record;
}

const records = new WeakMap<DesiredState, StateRecord>();

function buildRecord(desired: DesiredState, mark: OwnerMark): StateRecord {
  const netns = new Map<string, NetnsRef>();
  for (const e of Object.values(desired.entries))
    if (e.kind === 'netns') netns.set(netnsKey(e.netns), e.netns);
  return {
    version: 1,
    mark,
    devices: desired.device === undefined ? [] : [desired.device.name],
    netns: [...netns.keys()].sort().map((k) => netns.get(k) as NetnsRef),
  };
}

/** Both records' devices and netns: where anything of ours may be while an apply runs. */
export function unionRecord(a: StateRecord, b: StateRecord): StateRecord {
  const netns = new Map<string, NetnsRef>();
  for (const n of [...a.netns, ...b.netns]) netns.set(netnsKey(n), n);
  return {
    version: 1,
    mark: b.mark,
    devices: [...new Set([...a.devices, ...b.devices])].sort(),
    netns: [...netns.keys()].sort().map((k) => netns.get(k) as NetnsRef),
  };
}

export function sameRecord(a: StateRecord, b: StateRecord): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

export function recordPath(stateDir: string): string {
  return join(stateDir, 'forwarder', 'state.json');
}

/** Reads the record; none yet is an empty record. A record that cannot be read is an error, not a guess. */
export async function readRecord(stateDir: string, mark: OwnerMark): Promise<StateRecord> {
  const path = recordPath(stateDir);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return emptyRecord(mark);
    throw AgentError.wrap(
      e,
      'UNAVAILABLE',
      `cannot read the forwarder record ${path}`,
      'check the state dir permissions (the agent runs as root)',
    );
  }
  const r = parseRecord(text);
  if (r === undefined) {
    throw new AgentError('FAILED_PRECONDITION', `the forwarder record ${path} is not valid`, {
      hint: `the data plane may have leftovers the agent cannot find; remove links named ${mark.prefix}<8 hex>, routes with proto ${mark.proto} and the WireGuard device by hand, then delete ${path}`,
    });
  }
  if (r.mark.prefix !== mark.prefix || r.mark.proto !== mark.proto) {
    // A changed mark would orphan everything made under the old one; adopt with the old one first.
    throw new AgentError(
      'FAILED_PRECONDITION',
      `the forwarder record was made with prefix ${r.mark.prefix} and proto ${r.mark.proto}, not ${mark.prefix} and ${mark.proto}`,
      {
        hint: 'start once with the old forwarder mark and an empty desired state to clean up, then change it',
      },
    );
  }
  return r;
}

/** Writes the record atomically: temp file, fsync, rename, fsync of the directory. */
export async function writeRecord(stateDir: string, record: StateRecord): Promise<void> {
  const path = recordPath(stateDir);
  await mkdir(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp`;
  const f = await open(tmp, 'w', 0o600);
  try {
    await f.writeFile(`${JSON.stringify(record, null, 2)}\n`);
    await f.sync();
  } finally {
    await f.close();
  }
  await rename(tmp, path);
  const d = await open(dirname(path), 'r');
  try {
    await d.sync();
  } finally {
    await d.close();
  }
}

function parseRecord(text: string): StateRecord | undefined {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const mark = o['mark'] as Record<string, unknown> | undefined;
  if (
    o['version'] !== 1 ||
    typeof mark !== 'object' ||
    typeof mark['prefix'] !== 'string' ||
    typeof mark['proto'] !== 'number'
  )
    return undefined;
  const devices = o['devices'];
  const netns = o['netns'];
  if (!Array.isArray(devices) || !devices.every((d) => typeof d === 'string')) return undefined;
  if (!Array.isArray(netns) || !netns.every(isNetnsRef)) return undefined;
  return { version: 1, mark: { prefix: mark['prefix'], proto: mark['proto'] }, devices, netns };
}

function isNetnsRef(v: unknown): v is NetnsRef {
  if (typeof v !== 'object' || v === null) return false;
  const o = v as Record<string, unknown>;
  return (
    (o['kind'] === 'named' && typeof o['name'] === 'string') ||
    (o['kind'] === 'pid' && typeof o['pid'] === 'number') ||
    (o['kind'] === 'path' && typeof o['path'] === 'string')
  );
}
