// STYLE.md convention 3: no side effects at import — no env reads, no timers, no file reads at module
// top level. This file imports every module under src/ (except the entry point, whose job is to run)
// with traps set, and fails if any trap fires with a src/ frame on the stack.
import { readdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import type * as FsModule from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import test from 'ava';

// The CommonJS fs object is the one every module shares, and unlike an ESM namespace it can be patched.
const fs = createRequire(import.meta.url)('node:fs') as typeof FsModule;
const root = fileURLToPath(new URL('../../', import.meta.url));
const srcDir = join(root, 'src');

function modules(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((d) => {
    const p = join(dir, d.name);
    if (d.isDirectory()) return modules(p);
    return d.name.endsWith('.ts') && !d.name.endsWith('.d.ts') ? [p] : [];
  });
}

/** The first frame of ours (under src/) in the current stack, if any. */
function srcFrame(): string | undefined {
  const stack = new Error().stack ?? '';
  return stack
    .split('\n')
    .slice(2)
    .find((l) => l.includes(srcDir) && !l.includes('node_modules'));
}

test('importing any module under src/ reads no env, starts no timer and touches no file', async (t) => {
  const files = modules(srcDir).filter((f) => relative(srcDir, f) !== 'main.ts');
  t.true(files.length > 10, `found ${files.length} modules`);

  const violations: string[] = [];
  const note = (what: string): void => {
    const frame = srcFrame();
    if (frame) violations.push(`${what} (${frame.trim()})`);
  };

  const realEnv = process.env;
  process.env = new Proxy(realEnv, {
    get(target, prop, receiver) {
      if (typeof prop === 'string') note(`process.env.${prop} read`);
      return Reflect.get(target, prop, receiver) as unknown;
    },
  });
  const timers = { setTimeout, setInterval, setImmediate };
  const trapped = <F extends (...a: never[]) => unknown>(name: string, f: F): F =>
    ((...a: never[]) => {
      note(`${name} called`);
      return f(...a);
    }) as F;
  globalThis.setTimeout = trapped('setTimeout', timers.setTimeout);
  globalThis.setInterval = trapped('setInterval', timers.setInterval);
  globalThis.setImmediate = trapped('setImmediate', timers.setImmediate);
  const mutableFs = fs as unknown as Record<string, (...a: never[]) => unknown>;
  const fsFns = ['readFileSync', 'writeFileSync', 'existsSync', 'mkdirSync', 'statSync', 'openSync'];
  const realFs = new Map(fsFns.map((n) => [n, mutableFs[n]!]));
  for (const [n, f] of realFs) mutableFs[n] = trapped(`fs.${n}`, f);

  try {
    for (const f of files) await import(pathToFileURL(f).href);
  } finally {
    process.env = realEnv;
    Object.assign(globalThis, timers);
    for (const [n, f] of realFs) mutableFs[n] = f;
  }
  t.deepEqual(violations, [], 'modules must not do work at import time');
});
