// A whole mesh on one machine, for `npm run demo` and the agent e2e tests: the netns test bed
// (scripts/lib/testbed.ts) with the control server on host 1 and one agent daemon per further host,
// each enrolled with its own token and started with its own state dir, run dir (api.sock),
// config file and WireGuard device name.
//
//   host 1  <prefix>-h1  10.123.0.1   nsm-agent server run   tcp://10.123.0.1:5002
//   host 2  <prefix>-h2  10.123.0.2   nsm-agent run (agent 1) tcp://10.123.0.2:5001, <prefix>-h2-wg
//   host 3  <prefix>-h3  10.123.0.3   nsm-agent run (agent 2) …
//
// Every process the mesh starts is a child of this process with its output in a file under the
// work dir; close() stops each by pid, takes the bed down (which also ends anything else still
// inside its namespaces, wireguard-go included, and removes the UAPI sockets) and removes the work
// dir. close() runs on SIGINT/SIGTERM/SIGHUP too, and a last synchronous sweep runs at exit.
import { execFile, spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ConnectionRow, ServicesReport, StatusReport } from '../../src/localapi/index.js';
import { testbedDown, testbedDownSync, testbedUp } from './testbed.js';
import type { Testbed, TestbedHost } from './testbed.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
/** The control server's port on host 1, and the agents' port for remote agents. */
export const serverPort = 5002;
export const agentPort = 5001;

export interface LocalMeshOptions {
  /** Test bed prefix: 1–8 lowercase letters/digits; every netns, device and socket carries it. */
  readonly prefix: string;
  /** How many agents (hosts 2..agents+1). */
  readonly agents: number;
  /** Run this nsm-agent binary (e.g. dist/nsm-agent); default: `node --import tsx src/main.ts`. */
  readonly binary?: string;
  /**
   * Where state dirs, run dirs (sockets), configs and logs go: a dir the mesh owns, removed by
   * close() unless keepWorkDir; default a new dir under the OS temp dir.
   */
  readonly workDir?: string;
  readonly trustDomain?: string;
  /** The agents' --log-level (default info). */
  readonly logLevel?: string;
  /** Bound for each agent to report ready (default 30 s). */
  readonly readyTimeoutMs?: number;
  /** Extra config for agent i (1-based): `exposes`, `connects`… merged into its config file. */
  readonly config?: (agent: number) => Readonly<Record<string, unknown>>;
  /** false: enrol the agents but do not start their daemons (call agent(i).start()); default true. */
  readonly startAgents?: boolean;
  /** Keep the work dir after close() (logs for a failed test); default false. */
  readonly keepWorkDir?: boolean;
  /** Close on SIGINT/SIGTERM/SIGHUP and exit 128+n; default true. */
  readonly handleSignals?: boolean;
  /** Progress lines (the demo prints them); default silent. */
  readonly onStep?: (line: string) => void;
}

export interface RunResult {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** Wall time of the command, ms. */
  readonly ms: number;
}

/** A long-running process the mesh started and will stop. */
export interface MeshProcess {
  readonly name: string;
  readonly pid: number;
  readonly logPath: string;
  /** Exit code or signal name, once it exited. */
  readonly exited: Promise<number | string | null>;
  readonly running: boolean;
  logs(): string;
  /** Sends `signal`, then SIGKILL after `graceMs` (default 5 s); resolves when it exited. */
  stop(signal?: NodeJS.Signals, graceMs?: number): Promise<number | string | null>;
  /** Lets this process outlive ours (no exit sweep, not waited for). */
  release(): void;
}

export interface MeshServer {
  readonly host: TestbedHost;
  /** tcp://10.123.0.1:5002 */
  readonly url: string;
  readonly dataDir: string;
  readonly logPath: string;
  readonly pid: number | undefined;
  /** Starts `server run` and waits (bounded) until it listens. */
  start(): Promise<void>;
  /** SIGTERM (SIGKILL after 5 s) and wait for the exit. */
  stop(): Promise<void>;
  logs(): string;
}

export interface MeshAgent {
  /** 1-based agent number; agent i runs on host i+1. */
  readonly index: number;
  readonly host: TestbedHost;
  /** Agent name in the mesh (its config's agent.name): the host's netns name. */
  readonly name: string;
  readonly netns: string;
  readonly spiffeId: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly configPath: string;
  /** unix://<runDir>/api.sock */
  readonly api: string;
  /** tcp://<underlay>:5001 */
  readonly publicUrl: string;
  readonly wgDevice: string;
  readonly logPath: string;
  readonly pid: number | undefined;
  /** Runs the CLI against this agent's local API, inside its netns; bounded (default 60 s). */
  cli(args: readonly string[], o?: { timeoutMs?: number }): Promise<RunResult>;
  /** `status --json`, parsed; throws with the CLI's stderr when it fails. */
  status(): Promise<StatusReport>;
  /** `services --json`, parsed. */
  services(): Promise<ServicesReport>;
  /** `connect <service> --json`, parsed; throws with the CLI's stderr when it fails. */
  connect(service: string, extra?: readonly string[]): Promise<ConnectionRow>;
  /** Runs argv in this agent's netns, bounded (default 30 s). */
  exec(argv: readonly string[], o?: { timeoutMs?: number; input?: string }): Promise<RunResult>;
  /** Starts a long-running argv in this agent's netns, stopped by close(). */
  spawn(name: string, argv: readonly string[]): MeshProcess;
  /** Sends a signal to the daemon and waits for it to exit (SIGKILL after 5 s for other signals). */
  kill(signal?: NodeJS.Signals): Promise<number | string | null>;
  /** Starts the daemon (after kill) and waits until it is ready. */
  start(): Promise<void>;
  /** SIGTERM, then start(). */
  restart(): Promise<void>;
  /** Waits (bounded) until `status` says ready; fails early with the log when the daemon exits. */
  waitReady(timeoutMs?: number): Promise<StatusReport>;
  logs(): string;
}

export interface LocalMesh {
  readonly prefix: string;
  readonly bed: Testbed;
  readonly workDir: string;
  readonly trustDomain: string;
  readonly server: MeshServer;
  readonly agents: readonly MeshAgent[];
  /** Agent i, 1-based (agent 1 is on host 2). */
  agent(i: number): MeshAgent;
  /** Stops every process by pid, takes the bed down, removes the work dir. Idempotent. */
  close(): Promise<void>;
  /**
   * Leaves the mesh running after this process exits (`npm run demo -- --keep`): no signal
   * handlers, no exit sweep; `npm run testbed -- down --prefix <prefix>` removes it later.
   */
  release(): void;
}

/** How the nsm-agent command line starts: the binary, or node + tsx on the source. */
export function agentCommand(binary?: string): string[] {
  return binary === undefined
    ? [process.execPath, '--import', 'tsx', join(repoRoot, 'src', 'main.ts')]
    : [binary];
}

/** Runs argv (in `netns` with `ip netns exec` when given), bounded; never throws for a non-zero exit. */
export function runCommand(
  argv: readonly string[],
  o: { netns?: string; timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string } = {},
): Promise<RunResult> {
  const full = o.netns === undefined ? [...argv] : ['ip', 'netns', 'exec', o.netns, ...argv];
  const started = performance.now();
  return new Promise((resolve) => {
    const child = execFile(
      full[0]!,
      full.slice(1),
      {
        cwd: repoRoot,
        timeout: o.timeoutMs ?? 30_000,
        killSignal: 'SIGKILL',
        maxBuffer: 16 * 1024 * 1024,
        env: o.env ?? process.env,
      },
      (error, stdout, stderr) => {
        const code =
          error === null ? 0 : typeof error.code === 'number' ? error.code : error.killed ? null : 1;
        const timedOut = error?.killed === true ? `\n(killed after ${o.timeoutMs ?? 30_000} ms)` : '';
        resolve({ code, stdout, stderr: stderr + timedOut, ms: Math.round(performance.now() - started) });
      },
    );
    if (o.input !== undefined) child.stdin?.end(o.input);
    else child.stdin?.end();
  });
}

const wait = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** The last `n` lines of a log file (for error messages). */
export function tail(path: string, n = 30): string {
  try {
    return readFileSync(path, 'utf8').trimEnd().split('\n').slice(-n).join('\n');
  } catch {
    return '(no log)';
  }
}

/** Every long-running child of every mesh of this process, for the exit sweep. */
const live = new Set<MeshProcess>();
/** Beds this process made and has not closed, with the work dir to remove (undefined: keep it). */
const openBeds = new Map<string, string | undefined>();
let exitHook = false;

function installExitHook(): void {
  if (exitHook) return;
  exitHook = true;
  process.on('exit', () => {
    for (const p of live) {
      try {
        process.kill(p.pid, 'SIGKILL');
      } catch {
        // gone
      }
    }
    for (const [prefix, dir] of openBeds) {
      testbedDownSync(prefix);
      if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
    }
  });
}

function startProcess(
  name: string,
  argv: readonly string[],
  o: { netns?: string; logPath: string; env?: NodeJS.ProcessEnv },
): MeshProcess {
  const full = o.netns === undefined ? [...argv] : ['ip', 'netns', 'exec', o.netns, ...argv];
  const fd = openSync(o.logPath, 'a');
  let child: ChildProcess;
  try {
    // `ip netns exec` execs the command in place: the pid is the command's own. Its own process
    // group, so a terminal's Ctrl-C reaches us (which stops it by pid) rather than it directly.
    child = spawn(full[0]!, full.slice(1), {
      cwd: repoRoot,
      detached: true,
      stdio: ['ignore', fd, fd],
      env: o.env ?? process.env,
    });
  } finally {
    closeSync(fd);
  }
  let running = true;
  const exited = new Promise<number | string | null>((resolve) => {
    child.once('exit', (code, signal) => {
      running = false;
      live.delete(proc);
      resolve(signal ?? code);
    });
    child.once('error', (e) => {
      running = false;
      live.delete(proc);
      writeFileSync(o.logPath, `cannot start ${full[0] ?? ''}: ${e.message}\n`, { flag: 'a' });
      resolve(null);
    });
  });
  const proc: MeshProcess = {
    name,
    pid: child.pid ?? -1,
    logPath: o.logPath,
    exited,
    get running() {
      return running;
    },
    logs: () => (existsSync(o.logPath) ? readFileSync(o.logPath, 'utf8') : ''),
    async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 5_000) {
      if (!running) return exited;
      child.kill(signal);
      if (signal === 'SIGKILL') return exited;
      const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
      const r = await exited;
      clearTimeout(timer);
      return r;
    },
    release() {
      live.delete(proc);
      child.unref();
    },
  };
  if (child.pid !== undefined) live.add(proc);
  return proc;
}

/**
 * Builds the mesh: test bed, control server (init + run), one token, enrolment and daemon per
 * agent, and waits for every agent to be ready. On any failure everything started is removed and
 * the error says which step failed, with the log's tail.
 */
export async function startLocalMesh(o: LocalMeshOptions): Promise<LocalMesh> {
  if (!Number.isInteger(o.agents) || o.agents < 1 || o.agents > 20) throw new Error('agents: 1..20');
  const step = o.onStep ?? (() => undefined);
  const trustDomain = o.trustDomain ?? 'mesh.test';
  const command = agentCommand(o.binary);
  const workDir = o.workDir ?? (await mkdtemp(join(tmpdir(), `nsm-mesh-${o.prefix}-`)));
  await mkdir(workDir, { recursive: true });
  installExitHook();
  openBeds.set(o.prefix, o.keepWorkDir === true ? undefined : workDir);

  const procs = new Set<MeshProcess>();
  let closed: Promise<void> | undefined;
  const signals: Readonly<Record<string, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
  const handlers: [string, () => void][] = [];
  const close = (): Promise<void> =>
    (closed ??= (async () => {
      for (const [sig, h] of handlers) process.off(sig, h);
      await Promise.all([...procs].map((p) => p.stop('SIGTERM', 3_000)));
      try {
        await testbedDown(o.prefix);
      } finally {
        openBeds.delete(o.prefix);
        if (o.keepWorkDir !== true) await rm(workDir, { recursive: true, force: true });
      }
    })());
  if (o.handleSignals !== false) {
    for (const [sig, n] of Object.entries(signals)) {
      const h = (): void => {
        process.stderr.write(`\n${sig}: stopping the local mesh ${o.prefix}…\n`);
        void close().finally(() => process.exit(128 + n));
      };
      process.on(sig, h);
      handlers.push([sig, h]);
    }
  }
  const track = (p: MeshProcess): MeshProcess => {
    procs.add(p);
    void p.exited.then(() => procs.delete(p));
    return p;
  };

  try {
    let t0 = performance.now();
    const bed = await testbedUp({ prefix: o.prefix, hosts: o.agents + 1 });
    step(`test bed ${o.prefix}: ${bed.hosts.length} network namespaces on one bridge (${ms(t0)})`);
    const serverHost = bed.hosts[0]!;
    const server = meshServer(serverHost, workDir, command, track);
    t0 = performance.now();
    const init = await runCommand(
      [...command, 'server', 'init', '--trust-domain', trustDomain, '--data-dir', server.dataDir],
      { netns: serverHost.netns },
    );
    if (init.code !== 0) throw new Error(`server init failed:\n${init.stderr}`);
    await server.start();
    step(`control server on ${serverHost.netns}: ${server.url}, trust domain ${trustDomain} (${ms(t0)})`);

    const agents: MeshAgent[] = [];
    for (let i = 1; i <= o.agents; i++) {
      const host = bed.hosts[i]!;
      t0 = performance.now();
      const token = await runCommand(
        [...command, 'token', 'create', '--data-dir', server.dataDir, '--label', `host=${host.netns}`],
        { netns: serverHost.netns },
      );
      if (token.code !== 0) throw new Error(`token create for ${host.netns} failed:\n${token.stderr}`);
      const dir = join(workDir, host.netns);
      const stateDir = join(dir, 'state');
      const runDir = join(dir, 'run');
      await mkdir(runDir, { recursive: true });
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, token.stdout.trim() + '\n', { mode: 0o600 });
      const enrolled = await runCommand(
        [...command, 'enroll', '--token-file', tokenFile, '--state-dir', stateDir, '--json'],
        { netns: host.netns },
      );
      await rm(tokenFile, { force: true });
      if (enrolled.code !== 0) throw new Error(`enroll on ${host.netns} failed:\n${enrolled.stderr}`);
      const spiffeId = (JSON.parse(enrolled.stdout) as { spiffeId: string }).spiffeId;
      await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost\n');
      const configPath = join(dir, 'config.json');
      await writeFile(
        configPath,
        JSON.stringify(
          {
            mesh: { server: server.url, trustDomain },
            agent: { name: host.netns },
            ...o.config?.(i),
          },
          null,
          2,
        ) + '\n',
      );
      const agent = meshAgent({
        index: i,
        host,
        spiffeId,
        dir,
        stateDir,
        runDir,
        configPath,
        command,
        logLevel: o.logLevel ?? 'info',
        readyTimeoutMs: o.readyTimeoutMs ?? 30_000,
        track,
      });
      step(`agent ${i} on ${host.netns}: enrolled as ${spiffeId} (${ms(t0)})`);
      agents.push(agent);
      if (o.startAgents === false) continue;
      t0 = performance.now();
      await agent.start();
      step(`agent ${i} on ${host.netns}: ready, remote API ${agent.publicUrl}, api ${agent.api} (${ms(t0)})`);
    }
    return {
      prefix: o.prefix,
      bed,
      workDir,
      trustDomain,
      server,
      agents,
      agent(i) {
        const a = agents[i - 1];
        if (a === undefined) throw new Error(`no agent ${i}: this mesh has agents 1..${agents.length}`);
        return a;
      },
      close,
      release() {
        for (const [sig, h] of handlers) process.off(sig, h);
        for (const p of procs) p.release();
        procs.clear();
        openBeds.delete(o.prefix);
      },
    };
  } catch (e: unknown) {
    await close().catch(() => undefined);
    throw e;
  }
}

function ms(t0: number): string {
  return `${Math.round(performance.now() - t0)} ms`;
}

function meshServer(
  host: TestbedHost,
  workDir: string,
  command: readonly string[],
  track: (p: MeshProcess) => MeshProcess,
): MeshServer {
  const dataDir = join(workDir, 'server');
  const logPath = join(workDir, 'server.log');
  const url = `tcp://${host.underlayIp}:${serverPort}`;
  let proc: MeshProcess | undefined;
  return {
    host,
    url,
    dataDir,
    logPath,
    get pid() {
      return proc?.running === true ? proc.pid : undefined;
    },
    async start() {
      if (proc?.running === true) throw new Error('the control server is running already');
      const from = existsSync(logPath) ? readFileSync(logPath, 'utf8').length : 0;
      proc = track(
        startProcess(
          'control server',
          [...command, 'server', 'run', '--data-dir', dataDir, '--listen', url, '--public-url', url],
          { netns: host.netns, logPath },
        ),
      );
      const deadline = Date.now() + 30_000;
      for (;;) {
        if (proc.logs().slice(from).includes('control server listening')) return;
        if (!proc.running) throw new Error(`the control server exited:\n${tail(logPath)}`);
        if (Date.now() > deadline)
          throw new Error(`the control server did not listen in 30 s:\n${tail(logPath)}`);
        await wait(50);
      }
    },
    async stop() {
      await proc?.stop('SIGTERM');
    },
    logs: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
  };
}

interface AgentSetup {
  readonly index: number;
  readonly host: TestbedHost;
  readonly spiffeId: string;
  readonly dir: string;
  readonly stateDir: string;
  readonly runDir: string;
  readonly configPath: string;
  readonly command: readonly string[];
  readonly logLevel: string;
  readonly readyTimeoutMs: number;
  readonly track: (p: MeshProcess) => MeshProcess;
}

function meshAgent(s: AgentSetup): MeshAgent {
  const api = `unix://${join(s.runDir, 'api.sock')}`;
  const publicUrl = `tcp://${s.host.underlayIp}:${agentPort}`;
  const logPath = join(s.dir, 'agent.log');
  const env = { ...process.env, NSM_AGENT_API: api };
  let daemon: MeshProcess | undefined;
  let spawned = 0;

  const cli = (args: readonly string[], o: { timeoutMs?: number } = {}): Promise<RunResult> =>
    runCommand([...s.command, ...args], { netns: s.host.netns, env, timeoutMs: o.timeoutMs ?? 60_000 });
  const json = async <T>(args: readonly string[]): Promise<T> => {
    const r = await cli(args);
    if (r.code !== 0)
      throw new Error(`nsm-agent ${args.join(' ')} on ${s.host.netns} exited ${String(r.code)}: ${r.stderr}`);
    return JSON.parse(r.stdout) as T;
  };

  const agent: MeshAgent = {
    index: s.index,
    host: s.host,
    name: s.host.netns,
    netns: s.host.netns,
    spiffeId: s.spiffeId,
    stateDir: s.stateDir,
    runDir: s.runDir,
    configPath: s.configPath,
    api,
    publicUrl,
    wgDevice: s.host.wgDevice,
    logPath,
    get pid() {
      return daemon?.running === true ? daemon.pid : undefined;
    },
    cli,
    status: () => json<StatusReport>(['status', '--json']),
    services: () => json<ServicesReport>(['services', '--json']),
    connect: (service, extra = []) => json<ConnectionRow>(['connect', service, ...extra, '--json']),
    exec: (argv, o = {}) =>
      runCommand(argv, {
        netns: s.host.netns,
        timeoutMs: o.timeoutMs ?? 30_000,
        ...(o.input === undefined ? {} : { input: o.input }),
      }),
    spawn: (name, argv) =>
      s.track(
        startProcess(name, argv, {
          netns: s.host.netns,
          logPath: join(s.dir, `${name.replace(/[^\w.-]+/g, '-')}-${++spawned}.log`),
        }),
      ),
    async kill(signal: NodeJS.Signals = 'SIGTERM') {
      if (daemon === undefined || !daemon.running) throw new Error(`agent ${s.index} is not running`);
      return daemon.stop(signal);
    },
    async start() {
      if (daemon?.running === true) throw new Error(`agent ${s.index} is running already`);
      writeFileSync(logPath, `--- start ${new Date().toISOString()}\n`, { flag: 'a' });
      daemon = s.track(
        startProcess(
          `agent ${s.index}`,
          [
            ...s.command,
            'run',
            '--config',
            s.configPath,
            '--state-dir',
            s.stateDir,
            '--run-dir',
            s.runDir,
            '--listen-remote',
            `tcp://:${agentPort}`,
            '--public-url',
            publicUrl,
            '--wireguard-interface',
            s.host.wgDevice,
            // Never the machine's /etc/hosts: every agent of the bed shares the file system.
            '--hosts-file',
            join(s.runDir, '..', 'hosts'),
            '--log-level',
            s.logLevel,
          ],
          { netns: s.host.netns, logPath },
        ),
      );
      await agent.waitReady();
    },
    async restart() {
      if (daemon?.running === true) await daemon.stop('SIGTERM');
      await agent.start();
    },
    async waitReady(timeoutMs = s.readyTimeoutMs) {
      const deadline = Date.now() + timeoutMs;
      let last: string;
      for (;;) {
        if (daemon === undefined || !daemon.running)
          throw new Error(
            `agent ${s.index} on ${s.host.netns} exited (${String(await daemon?.exited)}) before it was ready:\n${tail(logPath)}`,
          );
        if (existsSync(join(s.runDir, 'api.sock'))) {
          const r = await cli(['status', '--json'], { timeoutMs: 10_000 });
          if (r.code === 0) {
            try {
              const status = JSON.parse(r.stdout) as StatusReport;
              if (status.agent.ready) return status;
              last = 'status says not ready';
            } catch {
              last = `status --json printed no JSON: ${r.stdout.slice(0, 200)}`;
            }
          } else if (r.code === null || /daemon is not running|did not answer/.test(r.stderr)) {
            // A socket left by a killed agent, one not listening yet, or a CLI slow on a busy machine.
            last = r.stderr.trim();
          } else {
            // A daemon that answers must answer status while it starts, too (it says ready: false).
            throw new Error(
              `agent ${s.index} on ${s.host.netns}: status failed while it was starting (exit ${String(r.code)}): ${r.stderr.trim()}\n${tail(logPath)}`,
            );
          }
        } else last = `no ${join(s.runDir, 'api.sock')} yet`;
        if (Date.now() > deadline)
          throw new Error(
            `agent ${s.index} on ${s.host.netns} not ready in ${timeoutMs} ms (${last}):\n${tail(logPath)}`,
          );
        await wait(100);
      }
    },
    logs: () => (existsSync(logPath) ? readFileSync(logPath, 'utf8') : ''),
  };
  return agent;
}

/** A ping from `agent`'s netns every `intervalMs` until stop(); counts what came back. */
export interface PingRun {
  /** SIGINT to ping (it prints its summary), then the counts. */
  stop(): Promise<PingResult>;
}

export interface PingResult {
  readonly transmitted: number;
  readonly received: number;
  /**
   * Echo requests that got no reply, not counting those still in flight when ping was stopped:
   * every sequence number up to the last one answered that has no reply, plus those sent after it
   * beyond the last second (ping waits 1 s for a reply, -W 1).
   */
  readonly lost: number;
  /** The sequence numbers counted as lost. */
  readonly lostSeqs: readonly number[];
  readonly summary: string;
}

export function startPing(agent: MeshAgent, target: string, intervalMs = 10): PingRun {
  const p = agent.spawn('ping', ['ping', '-n', '-i', String(intervalMs / 1000), '-W', '1', target]);
  return {
    async stop() {
      await p.stop('SIGINT');
      return parsePing(p.logs(), Math.ceil(1_000 / intervalMs));
    },
  };
}

/** Reads ping's output; `inFlight`: how many of the last requests may still lack a reply. */
export function parsePing(text: string, inFlight = 0): PingResult {
  const m = /(\d+) packets transmitted, (\d+) received/.exec(text);
  const transmitted = Number(m?.[1] ?? 0);
  const received = Number(m?.[2] ?? 0);
  const replied = new Set<number>();
  for (const r of text.matchAll(/icmp_seq=(\d+)/g)) replied.add(Number(r[1]));
  // ping numbers requests from 1 (iputils) and prints one line per reply.
  const last = Math.max(0, ...replied);
  const lostSeqs: number[] = [];
  for (let seq = 1; seq <= last; seq++) if (!replied.has(seq)) lostSeqs.push(seq);
  for (let seq = last + 1; seq <= transmitted - inFlight; seq++) lostSeqs.push(seq);
  const summary = text
    .trim()
    .split('\n')
    .filter((l) => /packets transmitted|rtt /.test(l))
    .join('; ');
  return { transmitted, received, lost: lostSeqs.length, lostSeqs, summary };
}

/**
 * An HTTP GET from `agent`'s netns with node's fetch (no curl needed): status, body and time.
 * `code` is non-zero (and `stderr` says why) when no response came within `timeoutMs`.
 */
export async function httpGet(
  agent: Pick<MeshAgent, 'exec'>,
  url: string,
  timeoutMs = 5_000,
): Promise<RunResult & { status?: number; body?: string }> {
  const script =
    'const [u,t]=process.argv.slice(1);' +
    'fetch(u,{signal:AbortSignal.timeout(Number(t))}).then(async r=>{' +
    'process.stdout.write(JSON.stringify({status:r.status,body:await r.text()}))' +
    '},e=>{process.stderr.write(String(e&&e.cause?e.cause:e)+"\\n");process.exit(1)})';
  const r = await agent.exec([process.execPath, '-e', script, url, String(timeoutMs)], {
    timeoutMs: timeoutMs + 5_000,
  });
  if (r.code !== 0) return r;
  const parsed = JSON.parse(r.stdout) as { status: number; body: string };
  return { ...r, status: parsed.status, body: parsed.body };
}

/**
 * `python3 -m http.server <port>` in `agent`'s netns, serving a new dir with `index.html`;
 * resolves once it answers on 127.0.0.1.
 */
export async function startHttpServer(
  agent: MeshAgent,
  dir: string,
  html: string,
  port = 8080,
): Promise<MeshProcess> {
  await mkdir(dir, { recursive: true });
  await writeFile(join(dir, 'index.html'), html);
  const p = agent.spawn('http-server', [
    'python3',
    '-m',
    'http.server',
    String(port),
    '--bind',
    '0.0.0.0',
    '--directory',
    dir,
  ]);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const r = await httpGet(agent, `http://127.0.0.1:${port}/`, 1_000);
    if (r.status === 200) return p;
    if (!p.running) throw new Error(`python3 -m http.server exited:\n${p.logs()}`);
    if (Date.now() > deadline) throw new Error(`python3 -m http.server did not answer in 15 s:\n${p.logs()}`);
    await wait(100);
  }
}

/** The address part of a CIDR (169.254.0.1/32 → 169.254.0.1). */
export function addressOf(cidr: string): string {
  return cidr.split('/')[0] ?? cidr;
}
