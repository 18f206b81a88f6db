// Compares two V8 heap snapshots (e.g. the agent idle and with 200 connections, from
// `npm run bench:agent -- --heap-snapshots DIR`): self size and count per constructor / node type,
// largest growth first. Shallow sizes only (no retained sizes), which is enough to see what a
// connection costs.
//   node --import tsx bench/lib/agent-heap.ts BEFORE.heapsnapshot AFTER.heapsnapshot [--top 30] [--per N]
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

interface Snapshot {
  readonly snapshot: {
    readonly meta: { readonly node_fields: string[]; readonly node_types: [string[], ...unknown[]] };
  };
  readonly nodes: number[];
  readonly strings: string[];
}

export interface HeapGroup {
  readonly key: string;
  readonly count: number;
  readonly bytes: number;
}

/** Self size and count per group: objects by constructor name, everything else by node type. */
export function groupSnapshot(text: string): Map<string, HeapGroup> {
  const s = JSON.parse(text) as Snapshot;
  const fields = s.snapshot.meta.node_fields;
  const types = s.snapshot.meta.node_types[0];
  const width = fields.length;
  const iType = fields.indexOf('type');
  const iName = fields.indexOf('name');
  const iSize = fields.indexOf('self_size');
  const out = new Map<string, HeapGroup>();
  for (let i = 0; i < s.nodes.length; i += width) {
    const type = types[s.nodes[i + iType]!] ?? '?';
    const name = s.strings[s.nodes[i + iName]!] ?? '?';
    const key = type === 'object' || type === 'closure' ? `${type} ${name || '(anonymous)'}` : `(${type})`;
    const g = out.get(key) ?? { key, count: 0, bytes: 0 };
    out.set(key, { key, count: g.count + 1, bytes: g.bytes + s.nodes[i + iSize]! });
  }
  return out;
}

export function diffSnapshots(
  before: Map<string, HeapGroup>,
  after: Map<string, HeapGroup>,
): { key: string; count: number; bytes: number }[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys]
    .map((key) => ({
      key,
      count: (after.get(key)?.count ?? 0) - (before.get(key)?.count ?? 0),
      bytes: (after.get(key)?.bytes ?? 0) - (before.get(key)?.bytes ?? 0),
    }))
    .sort((x, y) => y.bytes - x.bytes);
}

function total(g: Map<string, HeapGroup>): number {
  let n = 0;
  for (const x of g.values()) n += x.bytes;
  return n;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1]) {
  const [a, b] = process.argv
    .slice(2)
    .filter((x, i, all) => !x.startsWith('--') && !all[i - 1]?.startsWith('--'));
  const num = (flag: string, d: number): number => {
    const i = process.argv.indexOf(flag);
    return i < 0 ? d : Number(process.argv[i + 1]);
  };
  if (a === undefined || b === undefined) {
    process.stderr.write(
      'usage: node --import tsx bench/lib/agent-heap.ts BEFORE AFTER [--top 30] [--per N]\n',
    );
    process.exit(2);
  }
  const top = num('--top', 30);
  const per = num('--per', 0);
  const before = groupSnapshot(readFileSync(a, 'utf8'));
  const after = groupSnapshot(readFileSync(b, 'utf8'));
  const kb = (n: number): string => (n / 1024).toFixed(1);
  console.log(
    `self sizes: before ${kb(total(before))} KB, after ${kb(total(after))} KB, growth ${kb(total(after) - total(before))} KB`,
  );
  console.log(
    `${'group'.padEnd(60)} ${'Δcount'.padStart(8)} ${'ΔKB'.padStart(9)}${per > 0 ? `  ${'B per unit'.padStart(10)}` : ''}`,
  );
  for (const d of diffSnapshots(before, after).slice(0, top))
    console.log(
      `${d.key.slice(0, 60).padEnd(60)} ${String(d.count).padStart(8)} ${kb(d.bytes).padStart(9)}${per > 0 ? `  ${(d.bytes / per).toFixed(0).padStart(10)}` : ''}`,
    );
  console.log('largest groups after:');
  for (const g of [...after.values()].sort((x, y) => y.bytes - x.bytes).slice(0, 15))
    console.log(`${g.key.slice(0, 60).padEnd(60)} ${String(g.count).padStart(8)} ${kb(g.bytes).padStart(9)}`);
}
