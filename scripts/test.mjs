#!/usr/bin/env node
// The test command: static checks (each counted as one test) then the ava suites in TAP form.
// Prints a plain last line `N passed, N failed[, N skipped]` that CI reads; exits 1 on any failure.
//   npm test                      everything
//   npm test -- test/unit/chain   only ava, only those files or folders (no static checks)
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';

const bin = (name) => new URL(`../node_modules/.bin/${name}`, import.meta.url).pathname;
const args = process.argv.slice(2);

const checks = [
  ['typecheck (tsc --noEmit, strict)', bin('tsc'), ['-p', 'tsconfig.json', '--noEmit']],
  ['lint (eslint)', bin('eslint'), ['--max-warnings', '0', '.']],
  ['format (prettier --check)', bin('prettier'), ['--check', '--log-level', 'warn', '.']],
  [
    'layering and circular imports (dependency-cruiser)',
    bin('depcruise'),
    ['src', '--config', '.dependency-cruiser.cjs', '--output-type', 'err'],
  ],
];

let passed = 0;
let failed = 0;
let skipped = 0;
const failures = [];

function run(cmd, argv, onLine) {
  return new Promise((resolve) => {
    const child = spawn(cmd, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    const rl = createInterface({ input: child.stdout });
    rl.on('line', onLine);
    const err = createInterface({ input: child.stderr });
    err.on('line', onLine);
    child.on('close', (code, signal) => resolve(code ?? (signal ? 128 : 1)));
    child.on('error', (e) => {
      onLine(`cannot start ${cmd}: ${e.message}`);
      resolve(127);
    });
  });
}

if (args.length === 0) {
  for (const [title, cmd, argv] of checks) {
    const out = [];
    const code = await run(cmd, argv, (l) => out.push(l));
    if (code === 0) {
      passed++;
      console.log(`ok - ${title}`);
    } else {
      failed++;
      failures.push(title);
      console.log(`not ok - ${title}`);
      for (const l of out.slice(-60)) console.log(`  ${l}`);
    }
  }
}

let avaFailed = 0;
const avaCode = await run(bin('ava'), ['--tap', ...args], (line) => {
  console.log(line);
  const m = /^(not ok|ok) \d+ - (.*)$/.exec(line);
  if (!m) return;
  const directive = /#\s*(SKIP|TODO)\b/i.exec(m[2]);
  if (directive) {
    skipped++;
  } else if (m[1] === 'ok') {
    passed++;
  } else {
    avaFailed++;
    failures.push(m[2]);
  }
});
failed += avaFailed;
if (avaCode !== 0 && avaFailed === 0) {
  failed++;
  failures.push(`ava exited with code ${avaCode} without a failing test line (crash, timeout or no tests)`);
}

if (failures.length > 0) {
  console.log('\nFailed:');
  for (const f of failures) console.log(`  - ${f}`);
}
console.log(`${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
process.exit(failed === 0 ? 0 : 1);
