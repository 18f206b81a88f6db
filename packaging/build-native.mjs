#!/usr/bin/env node
// Builds the agent's one native helper, every .c file in src/host/socket-buffers/native (UDP buffers
// of wireguard-go, sd_notify, the ICMP liveness pings; addon.h lists them), into one Node-API addon
// (.node) with the system C compiler and the Node-API headers of the devDependency node-api-headers;
// offline. Node-API is ABI-stable, so the one file loads in the development Node (tests under tsx)
// and in the Node runtime of the single binary, which embeds it as a SEA asset
// (packaging/build-binary.mjs). Nothing is rebuilt when the output is newer than every source and
// header in that folder.
//   node packaging/build-native.mjs [OUT]     default dist/native/udp-socket-buffers.node
//   CC=clang node packaging/build-native.mjs
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const nativeDir = path.join(root, 'src/host/socket-buffers/native');
export const defaultNativeOutput = path.join(root, 'dist/native/udp-socket-buffers.node');

/** The addon's files: what is compiled (.c) and what only the freshness check reads (.h). */
export function nativeFiles() {
  const names = fs.readdirSync(nativeDir).sort();
  const full = (n) => path.join(nativeDir, n);
  return {
    sources: names.filter((n) => n.endsWith('.c')).map(full),
    headers: names.filter((n) => n.endsWith('.h')).map(full),
  };
}

/** Compiles the addon to `out` (when missing or older than any source) and returns its path. */
export function buildNative(out = defaultNativeOutput) {
  const { sources, headers } = nativeFiles();
  const newest = Math.max(...[...sources, ...headers].map((f) => fs.statSync(f).mtimeMs));
  const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= newest;
  if (fresh) return out;
  let include;
  try {
    include = createRequire(import.meta.url)('node-api-headers').include_dir;
  } catch {
    throw new Error('node-api-headers is not installed: run npm ci');
  }
  fs.mkdirSync(path.dirname(out), { recursive: true });
  const tmp = `${out}.${process.pid}.tmp`;
  const cc = process.env.CC ?? 'gcc';
  const r = spawnSync(
    cc,
    [
      ...['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-fvisibility=hidden'],
      ...['-I', include, '-o', tmp, ...sources],
    ],
    { encoding: 'utf8' },
  );
  if (r.error !== undefined || r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    const why = r.error?.message ?? `${r.stderr}${r.stdout}`.trim();
    throw new Error(
      `cannot compile ${path.relative(root, nativeDir)}/*.c with ${cc}: ${why}; install a C compiler (apt-get install gcc libc6-dev) or set CC`,
    );
  }
  fs.renameSync(tmp, out);
  return out;
}

if (process.argv[1] !== undefined && fileURLToPath(import.meta.url) === path.resolve(process.argv[1])) {
  try {
    console.log(buildNative(process.argv[2] === undefined ? undefined : path.resolve(process.argv[2])));
  } catch (e) {
    console.error(`build-native: ${e.message}`);
    process.exit(1);
  }
}
