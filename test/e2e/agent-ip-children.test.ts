// The agent's kept `ip -json -batch -` process (its forwarder's reads and changes, see
// src/host/ip-batch-runner.ts) never outlives it: stopped with SIGTERM, the agent stops it on the
// way out; killed with SIGKILL, the process reads end-of-file on its input and exits by itself.
import { readFileSync, readdirSync } from 'node:fs';
import { rootSerial, useLocalMesh, waitFor } from '../helpers/local-mesh.js';
import { processExists as alive } from '../../src/host/index.js';
import type { MeshAgent } from '../helpers/local-mesh.js';

const prefix = 'nsmaic';
const mesh = useLocalMesh({ prefix, agents: 1 });

/** The pids of the agent's kept `ip … -batch -` children. */
function keptIp(agentPid: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      const argv = readFileSync(`/proc/${name}/cmdline`, 'utf8').split('\0');
      if (ppid === agentPid && argv[0] === 'ip' && argv.includes('-batch')) out.push(Number(name));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

async function childrenOf(agent: MeshAgent): Promise<number[]> {
  const pid = agent.pid;
  if (pid === undefined) throw new Error('the agent is not running');
  // The forwarder read the host when the agent started (adopt): its process is there.
  const r = await waitFor(
    'the agent has a kept ip process',
    () => {
      const pids = keptIp(pid);
      return Promise.resolve(pids.length > 0 ? pids : undefined);
    },
    10_000,
  );
  return r.value;
}

rootSerial('SIGTERM: the agent stops its kept ip process before it exits', async (t) => {
  const a = mesh().agent(1);
  const pids = await childrenOf(a);
  t.is(await a.kill('SIGTERM'), 0);
  for (const pid of pids) t.false(alive(pid), `ip ${pid} is gone when the agent has exited`);
  await a.start();
});

rootSerial('SIGKILL: the kept ip process exits by itself (end-of-file on its input)', async (t) => {
  const a = mesh().agent(1);
  if (a.pid === undefined) await a.start();
  const pids = await childrenOf(a);
  t.is(await a.kill('SIGKILL'), 'SIGKILL');
  const gone = await waitFor(
    'the kept ip process exited',
    () => Promise.resolve(pids.every((pid) => !alive(pid)) ? true : undefined),
    5_000,
  ).catch(() => undefined);
  t.truthy(gone, `still running: ${pids.filter(alive).join(', ')}`);
  await a.start();
});
