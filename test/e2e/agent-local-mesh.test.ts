// The local mesh itself (scripts/lib/local-mesh.ts), up to the point where agents would start: the
// control server runs in host 1's netns and answers on the underlay, every agent host is enrolled
// with its own token (the server lists them), and the mesh leaves nothing behind — neither after
// close() nor when the process that built it gets SIGINT or exits without closing.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { agentCommand, repoRoot, rootSerial, runCommand, startLocalMesh } from '../helpers/local-mesh.js';
import { hostSnapshot } from '../helpers/host-snapshot.js';

const nothingLeft = { netns: [], wireguardGo: [], sockets: [], rootLinks: [] };

rootSerial('control server and enrolled agent hosts in namespaces; close() leaves nothing', async (t) => {
  t.timeout(90_000);
  const prefix = 'nsmaglm';
  const steps: string[] = [];
  const mesh = await startLocalMesh({
    prefix,
    agents: 2,
    startAgents: false,
    handleSignals: false,
    onStep: (l) => steps.push(l),
  });
  try {
    for (const s of steps) t.log(s);
    t.is(mesh.server.url, 'tcp://10.123.0.1:5002');
    t.deepEqual(
      mesh.agents.map((a) => [a.netns, a.publicUrl, a.wgDevice]),
      [
        [`${prefix}-h2`, 'tcp://10.123.0.2:5001', `${prefix}-h2-wg`],
        [`${prefix}-h3`, 'tcp://10.123.0.3:5001', `${prefix}-h3-wg`],
      ],
    );
    const ids = mesh.agents.map((a) => a.spiffeId);
    for (const id of ids) t.regex(id, /^spiffe:\/\/mesh\.test\/agent\/[\w-]+$/);
    t.not(ids[0], ids[1], 'one identity per host');
    const hosts = await runCommand(
      [...agentCommand(), 'hosts', 'list', '--data-dir', mesh.server.dataDir, '--json'],
      { netns: mesh.server.host.netns },
    );
    t.is(hosts.code, 0, hosts.stderr);
    const rows = JSON.parse(hosts.stdout) as { spiffeId: string; labels: Record<string, string> }[];
    t.deepEqual(rows.map((r) => r.spiffeId).sort(), [...ids].sort());
    t.deepEqual(rows.map((r) => r.labels.host).sort(), [`${prefix}-h2`, `${prefix}-h3`]);

    // The server answers on the underlay from an agent's host (TLS port open).
    const probe = await mesh
      .agent(2)
      .exec(
        [
          process.execPath,
          '-e',
          "require('net').connect(5002,'10.123.0.1').on('connect',()=>process.exit(0)).on('error',()=>process.exit(1))",
        ],
        { timeoutMs: 5_000 },
      );
    t.is(probe.code, 0, 'agent host 2 reaches the control server on 10.123.0.1:5002');
    const sleeper = mesh.agent(1).spawn('sleeper', ['sleep', '600']);
    t.true(sleeper.running);
  } finally {
    await mesh.close();
  }
  t.false(existsSync(mesh.workDir), 'the work dir is removed');
  t.deepEqual(await hostSnapshot(prefix), nothingLeft);
});

/** Runs a script that builds a mesh with a long-running child, then `end`s as told. */
async function buildAndEnd(
  prefix: string,
  end: 'sigint' | 'exit',
): Promise<{ code: number | null; output: string }> {
  const dir = await mkdtemp(join(tmpdir(), 'nsm-mesh-end-'));
  const script = join(dir, 'mesh.mts');
  await writeFile(
    script,
    `import { startLocalMesh } from ${JSON.stringify(join(repoRoot, 'scripts/lib/local-mesh.ts'))};
const m = await startLocalMesh({ prefix: ${JSON.stringify(prefix)}, agents: 1, startAgents: false });
const p = m.agent(1).spawn('sleeper', ['sleep', '600']);
console.log('READY ' + m.workDir + ' ' + String(p.pid) + ' ' + String(m.server.pid));
${end === 'exit' ? 'process.exit(3);' : 'await new Promise(() => undefined);'}
`,
  );
  try {
    const child = spawn(process.execPath, ['--import', 'tsx', script], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 60_000);
    child.stdout.on('data', (b: Buffer) => {
      output += b.toString();
      if (end === 'sigint' && output.includes('READY')) child.kill('SIGINT');
    });
    child.stderr.on('data', (b: Buffer) => (output += b.toString()));
    const code = await exited;
    clearTimeout(timer);
    return { code, output };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

for (const end of ['sigint', 'exit'] as const) {
  rootSerial(
    `a mesh whose process ${end === 'sigint' ? 'gets SIGINT' : 'exits without close()'} leaves nothing`,
    async (t) => {
      t.timeout(90_000);
      const prefix = end === 'sigint' ? 'nsmagsi' : 'nsmagex';
      const r = await buildAndEnd(prefix, end);
      t.log(r.output.trim());
      t.is(r.code, end === 'sigint' ? 130 : 3);
      const [, workDir, ...pids] = /READY (\S+) (\d+) (\d+)/.exec(r.output) ?? [];
      if (workDir === undefined) throw new Error(`the script did not build its mesh: ${r.output}`);
      t.false(existsSync(workDir), 'the work dir is removed');
      t.deepEqual(await hostSnapshot(prefix), nothingLeft);
      // SIGKILLed, then reaped by init once their parent is gone: allow a moment.
      const deadline = Date.now() + 3_000;
      while (pids.some((pid) => existsSync(`/proc/${pid}`)) && Date.now() < deadline)
        await new Promise((resolve) => setTimeout(resolve, 20));
      for (const pid of pids)
        t.false(existsSync(`/proc/${pid}`), `process ${pid} (sleeper, control server) is gone`);
    },
  );
}
