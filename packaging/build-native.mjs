#!/usr/bin/env node
// Builds the agent's one native helper, src/host/socket-buffers/native/udp-socket-buffers.c, into a
// Node-API addon (.node) with the system C compiler and the Node-API headers of the devDependency
// node-api-headers; offline. Node-API is ABI-stable, so the one file loads in the development Node
// (tests under tsx) and in the Node runtime of the single binary, which embeds it as a SEA asset
// (packaging/build-binary.mjs). Nothing is rebuilt when the output is newer than the source.
//   node packaging/build-native.mjs [OUT]     default dist/native/udp-socket-buffers.node
//   CC=clang node packaging/build-native.mjs
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
export const nativeSource = path.join(root, 'src/host/socket-buffers/native/udp-socket-buffers.c');
export const defaultNativeOutput = path.join(root, 'dist/native/udp-socket-buffers.node');

/** Compiles the addon to `out` (when missing or older than the source) and returns its path. */
export function buildNative(out = defaultNativeOutput) {
  const fresh = fs.existsSync(out) && fs.statSync(out).mtimeMs >= fs.statSync(nativeSource).mtimeMs;
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
    ['-O2', '-Wall', '-Wextra', '-Werror', '-shared', '-fPIC', '-I', include, '-o', tmp, nativeSource],
    { encoding: 'utf8' },
  );
  if (r.error !== undefined || r.status !== 0) {
    fs.rmSync(tmp, { force: true });
    const why = r.error?.message ?? `${r.stderr}${r.stdout}`.trim();
    throw new Error(
      `cannot compile ${path.relative(root, nativeSource)} with ${cc}: ${why}; install a C compiler (apt-get install gcc libc6-dev) or set CC`,
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
