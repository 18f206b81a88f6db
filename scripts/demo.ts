// `npm run demo`: a whole mesh on this machine, in network namespaces, in one command.
//
//   control server (host 1) ── host A (agent 1): python3 -m http.server 8080, `nsm-agent expose web`
//                          └── host B (agent 2): `nsm-agent connect web`, then GET http://<service address>:8080/
//
// Prints each step with its timing, and exits 0 only when the page arrived on B through the mesh.
//   npm run demo                       build, show, tear down
//   npm run demo -- --keep             leave it running and print how to poke it and clean up
//   npm run demo -- --binary dist/nsm-agent   run the built binary instead of the source
//   npm run demo -- --prefix nsmdemo   the names of the namespaces/devices (default nsmdemo)
// Needs root (network namespaces, WireGuard), ip, wireguard-go and python3.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { addressOf, httpGet, repoRoot, startHttpServer, startLocalMesh } from './lib/local-mesh.js';
import type { LocalMesh, MeshAgent, RunResult } from './lib/local-mesh.js';
import type { ConnectionRow, ExposeRow } from '../src/localapi/index.js';

const usage = 'usage: npm run demo [-- --keep] [--binary PATH] [--prefix NAME]';

function say(line: string): void {
  process.stdout.write(`${line}\n`);
}

function fail(message: string, hint?: string): number {
  process.stderr.write(`demo: ${message}\n${hint === undefined ? '' : `  hint: ${hint}\n`}`);
  return 1;
}

/** What the demo needs from the machine; the first thing missing, with how to get it. */
function missingPrerequisite(): { message: string; hint: string } | undefined {
  if (process.platform !== 'linux')
    return {
      message: `this demo runs on Linux (this is ${process.platform})`,
      hint: 'run it on a Linux host or VM',
    };
  if (process.getuid?.() !== 0)
    return {
      message: 'the demo needs root: it creates network namespaces and WireGuard devices',
      hint: 'run it as root, e.g. sudo npm run demo',
    };
  const tools: readonly [string, string[], string][] = [
    ['ip', ['-V'], 'install iproute2 (apt-get install iproute2)'],
    ['wireguard-go', ['--version'], 'install wireguard-go (apt-get install wireguard-go)'],
    ['python3', ['--version'], 'install python3 (apt-get install python3); it serves the demo page'],
    ['ping', ['-V'], 'install iputils-ping (apt-get install iputils-ping)'],
  ];
  for (const [tool, args, hint] of tools) {
    const r = spawnSync(tool, args, { stdio: 'ignore' });
    if (r.error !== undefined) return { message: `${tool} is not installed or not on PATH`, hint };
  }
  return undefined;
}

function check(r: RunResult, what: string): RunResult {
  if (r.code !== 0)
    throw new Error(`${what} failed (exit ${String(r.code)}):\n${(r.stderr || r.stdout).trim()}`);
  return r;
}

async function main(argv: readonly string[]): Promise<number> {
  let values: { keep: boolean; binary?: string; prefix: string; help: boolean };
  try {
    values = parseArgs({
      args: [...argv],
      options: {
        keep: { type: 'boolean', default: false },
        binary: { type: 'string' },
        prefix: { type: 'string', default: 'nsmdemo' },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }).values;
  } catch (e: unknown) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${usage}\n`);
    return 2;
  }
  if (values.help) {
    say(usage);
    return 0;
  }
  const missing = missingPrerequisite();
  if (missing !== undefined) return fail(missing.message, missing.hint);
  const binary = values.binary === undefined ? undefined : resolve(values.binary);
  if (binary !== undefined && !existsSync(binary))
    return fail(`${binary} does not exist`, 'build it with npm run build:binary, or leave out --binary');

  const started = performance.now();
  const elapsed = (): string => `${((performance.now() - started) / 1000).toFixed(1)} s`;
  say(`Building a local mesh in network namespaces (prefix ${values.prefix})…`);
  let mesh: LocalMesh | undefined;
  try {
    mesh = await startLocalMesh({
      prefix: values.prefix,
      agents: 2,
      trustDomain: 'demo.mesh',
      ...(binary === undefined ? {} : { binary }),
      onStep: (line) => say(`  ${line}`),
    });
    const a = mesh.agent(1);
    const b = mesh.agent(2);
    say(`Host A = ${a.netns} (${a.host.underlayIp}), host B = ${b.netns} (${b.host.underlayIp})`);

    let t0 = performance.now();
    const site = join(mesh.workDir, 'site');
    const page = `<!doctype html><title>nsm-agent demo</title><h1>Hello from ${a.netns}</h1>\n`;
    await startHttpServer(a, site, page, 8080);
    say(`1. On A: python3 -m http.server 8080 serving ${site} (${ms(t0)})`);

    t0 = performance.now();
    const exposed = check(await a.cli(['expose', 'web', '--json']), 'nsm-agent expose web on A');
    const expose = parseJson(exposed.stdout) as ExposeRow;
    say(
      `2. On A: nsm-agent expose web → endpoint ${expose.endpoint}, service address ${expose.serviceAddress}, ${expose.dnsName} (${ms(t0)})`,
    );

    t0 = performance.now();
    const connected = check(await b.cli(['connect', 'web', '--json']), 'nsm-agent connect web on B');
    const row = parseJson(connected.stdout) as ConnectionRow;
    const target = row.serviceAddresses[0];
    if (target === undefined) throw new Error(`connect printed no service address:\n${connected.stdout}`);
    say(
      `3. On B: nsm-agent connect web → ${row.state}: service address ${target}, B's address ${row.localAddresses.join(', ')}, interface ${row.interface ?? '?'}, via ${row.remoteUrl ?? '?'}${row.dnsName === undefined ? '' : `, ${row.dnsName}`} (${ms(t0)})`,
    );

    t0 = performance.now();
    const url = `http://${addressOf(target)}:8080/`;
    const got = await fetchWithRetry(b, url);
    if (got.status !== 200 || got.body !== page)
      throw new Error(
        `GET ${url} from B: ${got.status === undefined ? got.stderr.trim() : `HTTP ${got.status}`}`,
      );
    say(`4. On B: GET ${url} → HTTP 200 in ${ms(t0)}:`);
    say(`   ${got.body.trim()}`);

    say(
      `\nThe page crossed the mesh: B reached A's plain HTTP server at its service address (${elapsed()} in all).`,
    );
    await showStatus(b);
    if (values.keep) {
      mesh.release();
      const cli = binary ?? 'node --import tsx src/main.ts';
      say(`\nLeft running (--keep). Try, from ${repoRoot}:`);
      say(`  NSM_AGENT_API=${b.api} ip netns exec ${b.netns} ${cli} status`);
      say(`  NSM_AGENT_API=${b.api} ip netns exec ${b.netns} ${cli} services`);
      say(`  ip netns exec ${b.netns} ping -c3 ${addressOf(target)}`);
      say(`  ip netns exec ${b.netns} curl ${url}`);
      say(`  logs: ${mesh.workDir} (agent.log per host, server.log)`);
      say('Clean up:');
      say(`  npm run testbed -- down --prefix ${mesh.prefix} && rm -rf ${mesh.workDir}`);
      return 0;
    }
    return 0;
  } catch (e: unknown) {
    process.stderr.write(`\ndemo failed after ${elapsed()}: ${e instanceof Error ? e.message : String(e)}\n`);
    if (mesh !== undefined)
      for (const agent of mesh.agents)
        process.stderr.write(`\n--- ${agent.netns} agent log (last lines) ---\n${lastLines(agent.logs())}\n`);
    return 1;
  } finally {
    if (mesh !== undefined && !values.keep) {
      const t0 = performance.now();
      await mesh.close();
      say(`Torn down: processes stopped, namespaces and devices removed (${ms(t0)}).`);
    }
  }
}

/** The first packets of a new connection may wait for the WireGuard handshake: a few tries, 10 s. */
async function fetchWithRetry(b: MeshAgent, url: string): ReturnType<typeof httpGet> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const r = await httpGet(b, url, 3_000);
    if (r.status !== undefined || Date.now() > deadline) return r;
  }
}

async function showStatus(b: MeshAgent): Promise<void> {
  const s = await b.cli(['status']);
  if (s.code === 0)
    say(
      `\nnsm-agent status on B:\n${s.stdout
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n')}`,
    );
}

function parseJson(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    throw new Error(`expected JSON, got: ${text.slice(0, 300)}`);
  }
}

function lastLines(text: string, n = 20): string {
  return text.trimEnd().split('\n').slice(-n).join('\n');
}

function ms(t0: number): string {
  return `${Math.round(performance.now() - t0)} ms`;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    process.stderr.write(`demo: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    process.exit(1);
  },
);
