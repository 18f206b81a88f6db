// What an idle agent's resident memory is made of: starts a local mesh (control server + N agents in
// network namespaces) with the given nsm-agent binary, lets it idle, then reads agent 1's
// /proc/<pid>/smaps per mapping (the binary's segments, the SEA blob, anonymous memory by kind,
// shared libraries), the thread count, and V8's heap spaces from the agent's own /metrics.
//
//   node --import tsx bench/lib/rss-probe.ts [--binary dist/nsm-agent] [--idle 15] [--agents 1]
//        [--prefix nsmrss] [--json] [--wrap "ENV=x"] [--label TEXT] [--evict] [--at 15,60,300]
//
// --evict drops the binary's pages from the page cache before the mesh starts (GNU dd iflag=nocache
// count=0: posix_fadvise DONTNEED on that one file), so RssFile does not depend on how recently the
// binary was written (a fresh build sits in the cache as large folios and maps ~15 MB more; see
// bench/results/agent-memory-20261201.txt section 0). Use it for every figure you compare.
// --at S1,S2,… also prints agent 1's RSS / RssAnon / RssFile at those seconds after the mesh is
// up (the full report still comes at --idle, which should be the last of them or later): how
// memory creeps back while the agent idles.
// --wrap runs the binary through `env ENV=x …` (e.g. MALLOC_ARENA_MAX=2), for environment-only knobs.
// Quick iterations on memory figures; bench:agent stays the benchmark of record.
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, rmSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startLocalMesh, repoRoot } from '../../scripts/lib/local-mesh.js';
import type { MeshAgent } from '../../scripts/lib/local-mesh.js';

export interface MappingGroup {
  readonly key: string;
  rssKb: number;
  anonKb: number;
  sizeKb: number;
  count: number;
}

export interface RssReport {
  readonly label: string;
  readonly rssKb: number;
  readonly pssKb: number;
  readonly rssAnonKb: number;
  readonly rssFileKb: number;
  readonly threads: number;
  readonly groups: MappingGroup[];
  readonly heap: Record<string, number>;
}

interface Mapping {
  readonly start: number;
  readonly end: number;
  readonly perms: string;
  readonly path: string;
  readonly rssKb: number;
  readonly anonKb: number;
}

/** /proc/<pid>/smaps as a list of mappings. */
export function readSmaps(pid: number): Mapping[] {
  const out: Mapping[] = [];
  let cur:
    { start: number; end: number; perms: string; path: string; rssKb: number; anonKb: number } | undefined;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \S+\s*(.*)$/.exec(line);
    if (head) {
      if (cur) out.push(cur);
      cur = {
        start: parseInt(head[1]!, 16),
        end: parseInt(head[2]!, 16),
        perms: head[3]!,
        path: head[4]!.trim(),
        rssKb: 0,
        anonKb: 0,
      };
      continue;
    }
    const f = /^(Rss|Anonymous):\s+(\d+) kB$/.exec(line);
    if (f && cur) {
      if (f[1] === 'Rss') cur.rssKb = Number(f[2]);
      else cur.anonKb = Number(f[2]);
    }
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * Groups mappings into what they are. Anonymous mappings are told apart by shape: thread stacks
 * (8 MB + guard, or Node's worker stacks), glibc malloc arenas (64 MB-aligned reservations of
 * non-main threads), the brk heap, and the rest (V8's heap pages, code space, mmap'd malloc chunks).
 */
export function groupMappings(maps: readonly Mapping[], binary: string): MappingGroup[] {
  const groups = new Map<string, MappingGroup>();
  const add = (key: string, m: Mapping): void => {
    const g = groups.get(key) ?? { key, rssKb: 0, anonKb: 0, sizeKb: 0, count: 0 };
    g.rssKb += m.rssKb;
    g.anonKb += m.anonKb;
    g.sizeKb += (m.end - m.start) / 1024;
    g.count += 1;
    groups.set(key, g);
  };
  const binaryPath = resolve(binary);
  for (const m of maps) {
    const sizeKb = (m.end - m.start) / 1024;
    if (m.path === binaryPath || m.path.endsWith('/nsm-agent')) add(`binary ${m.perms}`, m);
    else if (m.path === '[heap]') add('[heap] (brk: main malloc arena)', m);
    else if (m.path === '[stack]') add('[stack] (main thread)', m);
    else if (m.path.startsWith('[')) add(m.path, m);
    else if (m.path.endsWith('.node')) add('native addon (.node)', m);
    else if (m.path !== '') add(`lib ${m.path.replace(/^.*\//, '')}`, m);
    else if (m.perms === '---p') add('anon ---p (reserved, guard)', m);
    else if (sizeKb === 8192 || sizeKb === 8188) add('anon thread stacks (8 MB)', m);
    else if (sizeKb >= 1024 && sizeKb <= 65536 && m.start % (64 * 1024 * 1024) === 0)
      add('anon malloc arenas (64 MB-aligned)', m);
    else if (sizeKb % 256 === 0) add('anon 256K-multiple (V8 pages, large objects)', m);
    else add('anon other (mmap malloc, misc)', m);
  }
  return [...groups.values()].sort((a, b) => b.rssKb - a.rssKb);
}

function statusField(pid: number, name: string): number {
  const m = new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? NaN);
}

/** V8 heap spaces and a few process figures from the agent's Prometheus endpoint (in its netns). */
async function heapFromMetrics(agent: MeshAgent): Promise<Record<string, number>> {
  const r = await agent.exec(['curl', '-s', '--max-time', '5', 'http://127.0.0.1:9464/metrics']);
  const out: Record<string, number> = {};
  for (const line of r.stdout.split('\n')) {
    const m =
      /^(nodejs_heap_space_size_(?:used|total)_bytes)\{space="(\w+)"\} (\S+)/.exec(line) ??
      /^(nodejs_heap_size_(?:used|total)_bytes|nodejs_external_memory_bytes)() (\S+)/.exec(line);
    if (m) out[`${m[1]}${m[2] ? `{${m[2]}}` : ''}`] = Number(m[3]);
  }
  return out;
}

export function measure(pid: number, binary: string, label: string): Omit<RssReport, 'heap'> {
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  const pss = Number(/^Pss:\s+(\d+) kB$/m.exec(rollup)?.[1] ?? NaN);
  return {
    label,
    rssKb: statusField(pid, 'VmRSS'),
    pssKb: pss,
    rssAnonKb: statusField(pid, 'RssAnon'),
    rssFileKb: statusField(pid, 'RssFile'),
    threads: readdirSync(`/proc/${pid}/task`).length,
    groups: groupMappings(readSmaps(pid), binary),
  };
}

const mb = (kb: number): string => (kb / 1024).toFixed(1);

export function formatReport(r: RssReport): string {
  const lines = [
    `${r.label}: RSS ${mb(r.rssKb)} MB (anon ${mb(r.rssAnonKb)}, file ${mb(r.rssFileKb)}), PSS ${mb(r.pssKb)} MB, ${r.threads} threads`,
  ];
  for (const g of r.groups) {
    if (g.rssKb < 64) continue;
    lines.push(
      `  ${g.key.padEnd(48)} rss ${mb(g.rssKb).padStart(6)} MB  anon ${mb(g.anonKb).padStart(6)}  mapped ${mb(g.sizeKb).padStart(8)} MB  x${g.count}`,
    );
  }
  const h = r.heap;
  const spaces = Object.keys(h)
    .filter((k) => k.startsWith('nodejs_heap_space_size_used_bytes'))
    .map((k) => {
      const space = /\{(\w+)\}/.exec(k)?.[1] ?? '?';
      const total = h[`nodejs_heap_space_size_total_bytes{${space}}`] ?? 0;
      return `${space.replace(/_space$/, '')} ${mb(h[k]! / 1024)}/${mb(total / 1024)}`;
    });
  if (spaces.length > 0) {
    lines.push(
      `  V8 heap used/total ${mb((h.nodejs_heap_size_used_bytes ?? 0) / 1024)}/${mb((h.nodejs_heap_size_total_bytes ?? 0) / 1024)} MB, external ${mb((h.nodejs_external_memory_bytes ?? 0) / 1024)} MB`,
    );
    lines.push(`  spaces (MB used/total): ${spaces.join(', ')}`);
  }
  return lines.join('\n');
}

/** Drops `file`'s pages from the page cache (those no running process has mapped). */
export function evictFromPageCache(file: string): void {
  execFileSync('dd', [`if=${file}`, 'iflag=nocache', 'count=0', 'status=none']);
}

async function main(): Promise<void> {
  const argv = process.argv.slice(2);
  const opt = (name: string, d: string): string => {
    const i = argv.indexOf(name);
    return i < 0 ? d : (argv[i + 1] ?? d);
  };
  const binary = resolve(opt('--binary', join(repoRoot, 'dist', 'nsm-agent')));
  const idleS = Number(opt('--idle', '15'));
  const agents = Number(opt('--agents', '1'));
  const prefix = opt('--prefix', 'nsmrss');
  const wrap = opt('--wrap', '');
  const label = opt('--label', `${binary}${wrap === '' ? '' : ` (${wrap})`}`);
  let command = binary;
  let wrapDir: string | undefined;
  if (wrap !== '') {
    if (!/^[\w=,. -]+$/.test(wrap)) throw new Error(`--wrap: unexpected characters in ${wrap}`);
    wrapDir = mkdtempSync(join(tmpdir(), 'nsm-rss-'));
    command = join(wrapDir, 'nsm-agent');
    writeFileSync(command, `#!/bin/sh\nexec env ${wrap} ${binary} "$@"\n`, { mode: 0o755 });
  }
  if (argv.includes('--evict')) evictFromPageCache(binary);
  const mesh = await startLocalMesh({ prefix, agents, trustDomain: 'rss.mesh', binary: command });
  try {
    const a = mesh.agent(1);
    const pid = a.pid;
    if (pid === undefined) throw new Error('agent 1 has no pid');
    const started = Date.now();
    const at = opt('--at', '')
      .split(',')
      .filter((x) => x !== '')
      .map(Number);
    for (const s of at) {
      await new Promise((r) => setTimeout(r, Math.max(0, started + s * 1000 - Date.now())));
      process.stdout.write(
        `${label} at ${s} s: RSS ${mb(statusField(pid, 'VmRSS'))} MB (anon ${mb(statusField(pid, 'RssAnon'))}, file ${mb(statusField(pid, 'RssFile'))})\n`,
      );
    }
    await new Promise((r) => setTimeout(r, Math.max(0, started + idleS * 1000 - Date.now())));
    const heap = await heapFromMetrics(a);
    const report: RssReport = { ...measure(pid, binary, label), heap };
    const server = mesh.server.pid;
    const serverLine =
      server === undefined
        ? ''
        : `\n  control server: RSS ${mb(statusField(server, 'VmRSS'))} MB (anon ${mb(statusField(server, 'RssAnon'))}, file ${mb(statusField(server, 'RssFile'))})`;
    if (argv.includes('--json')) process.stdout.write(`${JSON.stringify(report)}\n`);
    else process.stdout.write(`${formatReport(report)}${serverLine}\n`);
  } finally {
    await mesh.close();
    if (wrapDir !== undefined) rmSync(wrapDir, { recursive: true, force: true });
  }
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === resolve(process.argv[1])) {
  main().catch((e: unknown) => {
    process.stderr.write(`rss-probe: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  });
}
