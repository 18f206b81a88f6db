// The commands that talk to the running agent, run in-process against a real local API server
// (a unix socket in a temp dir) in front of a fake AgentControl.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { startLocalApi } from '../../../src/localapi/index.js';
import type { ConnectionRow, ExposeRow } from '../../../src/localapi/index.js';
import { FakeAgentControl, sampleServices, sampleStatus } from '../../helpers/fake-agent-control.js';
import { cliWith } from './agent-cli-harness.js';

interface Agent {
  readonly control: FakeAgentControl;
  readonly url: string;
  readonly dir: string;
  /** Runs a command against this agent (--api given). */
  run(argv: readonly string[]): ReturnType<typeof cliWith>;
}

async function agent(t: ExecutionContext): Promise<Agent> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-cli-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const control = new FakeAgentControl();
  const url = `unix://${join(dir, 'api.sock')}`;
  const api = await startLocalApi({ url, control, log: silentLogger() });
  t.teardown(() => api.close());
  return { control, url, dir, run: (argv) => cliWith([...argv, '--api', url]) };
}

test('status: identity and expiry, server, data plane, the connections and exposes tables', async (t) => {
  const a = await agent(t);
  const r = await a.run(['status']);
  t.is(r.code, 0, r.stderr);
  t.is(r.stderr, '');
  t.regex(r.stdout, /^agent host-a: ready \(pid 4242/m);
  t.regex(r.stdout, /spiffe:\/\/mesh\.example\/agent\/h-1234, expires in 2h 0m/);
  t.regex(r.stdout, /server {6}tcp:\/\/ctl\.example:5002 up/);
  t.regex(r.stdout, /nsm-wg0 \(kernel WireGuard\), UDP port 51820/);
  t.regex(r.stdout, /STATE +SERVICE +NETNS +ADDRESS → SERVICE ADDRESS +HANDSHAKE +HEALS/);
  t.regex(r.stdout, /up +db-net +- +169\.254\.0\.2\/32 → 169\.254\.0\.1 +12s ago +1/);
  t.regex(
    r.stdout,
    /payments +169\.254\.0\.1 \(payments\.nsm\) +registered +2 +spiffe:\/\/mesh\.example\/agent\/\*/,
  );
  t.regex(r.stdout, /serving 3 connection/);
  t.notRegex(r.stdout, /cHVibGljLWtleQ/, 'the human view leaves the public key to --json');
});

test('status: a failing connection shows why; an agent not ready says so; a queued expose is explained', async (t) => {
  const a = await agent(t);
  const [conn] = sampleStatus.connections;
  const [expose] = sampleStatus.exposes;
  if (conn === undefined || expose === undefined) throw new Error('sample status has rows');
  a.control.statusReport = {
    ...sampleStatus,
    agent: { ...sampleStatus.agent, ready: false },
    server: { url: 'tcp://ctl.example:5002', state: 'connecting', lastError: 'connection refused' },
    connections: [{ ...conn, state: 'failed', lastError: 'no endpoint for db-net' }],
    exposes: [{ ...expose, registration: 'queued' }],
  };
  const r = await a.run(['status']);
  t.is(r.code, 0);
  t.regex(r.stdout, /starting \(not ready yet\)/);
  t.regex(r.stdout, /connecting \(last error: connection refused\)/);
  t.regex(r.stdout, /^ +failed +db-net/m);
  t.regex(r.stdout, /db-net: no endpoint for db-net/);
  t.regex(r.stdout, /queued: the control server is unreachable/);
});

test('status --json is the StatusReport', async (t) => {
  const a = await agent(t);
  const r = await a.run(['status', '--json']);
  t.is(r.code, 0);
  t.deepEqual(JSON.parse(r.stdout), sampleStatus);
});

test('connect: sends service, netns and labels; prints the addresses, DNS name and interface', async (t) => {
  const a = await agent(t);
  const r = await a.run([
    'connect',
    'db-net',
    '--netns',
    'blue',
    '--label',
    'app=billing',
    '--label',
    'env=prod',
  ]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(a.control.calls[0]?.request, {
    service: 'db-net',
    netns: 'blue',
    labels: { app: 'billing', env: 'prod' },
  });
  t.regex(r.stdout, /^connected db-net in netns blue: up$/m);
  t.regex(r.stdout, /service address +169\.254\.0\.1 +\(db-net\.nsm\)/);
  t.regex(r.stdout, /local address +169\.254\.0\.2\/32 on nsm-db0/);
  t.regex(r.stdout, /served by +host-b-db-net at tcp:\/\/10\.0\.0\.2:5001/);
});

test('connect --json is the ConnectionRow', async (t) => {
  const a = await agent(t);
  const r = await a.run(['connect', 'db-net', '--json']);
  t.is(r.code, 0);
  const row = JSON.parse(r.stdout) as ConnectionRow;
  t.is(row.service, 'db-net');
  t.deepEqual(row.serviceAddresses, ['169.254.0.1/32']);
  t.is(row.netns, undefined);
});

test('connect: the daemon refusing prints its message and hint, exit 1, nothing on stdout', async (t) => {
  const a = await agent(t);
  a.control.fail.set(
    'connect',
    new AgentError('NOT_FOUND', "no network service 'nope' in the mesh", {
      hint: 'list them: nsm-agent services',
    }),
  );
  const r = await a.run(['connect', 'nope']);
  t.is(r.code, 1);
  t.is(r.stdout, '');
  t.is(r.stderr, "error: no network service 'nope' in the mesh\nhint: list them: nsm-agent services\n");
});

test('connect: a name that is not a service name is refused with what a name looks like', async (t) => {
  const a = await agent(t);
  const r = await a.run(['connect', 'DB_net']);
  t.is(r.code, 1);
  t.regex(r.stderr, /error: 'service' must be a network service name/);
  t.regex(r.stderr, /hint: a service name is a lowercase DNS label/);
  t.deepEqual(a.control.calls, []);
});

test('disconnect: sends service and netns; says what was removed', async (t) => {
  const a = await agent(t);
  const r = await a.run(['disconnect', 'db-net', '--netns', 'blue']);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(a.control.calls[0]?.request, { service: 'db-net', netns: 'blue' });
  t.is(r.stdout, 'disconnected db-net in netns blue (removed 169.254.0.2/32)\n');
});

test('expose: sends cidr, labels and allow; prints the address, DNS name and registration', async (t) => {
  const a = await agent(t);
  const r = await a.run([
    'expose',
    'payments',
    '--cidr',
    '10.9.0.0/24',
    '--label',
    'tier=gold',
    '--allow',
    'spiffe://mesh.example/agent/a',
    '--allow',
    'spiffe://mesh.example/agent/b',
  ]);
  t.is(r.code, 0, r.stderr);
  t.deepEqual(a.control.calls[0]?.request, {
    service: 'payments',
    cidr: '10.9.0.0/24',
    labels: { tier: 'gold' },
    allow: ['spiffe://mesh.example/agent/a', 'spiffe://mesh.example/agent/b'],
  });
  t.regex(r.stdout, /^exposed payments as payments\.nsm \(169\.254\.0\.1\)$/m);
  t.regex(r.stdout, /allowed +spiffe:\/\/mesh\.example\/agent\/a, spiffe:\/\/mesh\.example\/agent\/b/);
  t.regex(r.stdout, /registered with the control server/);
});

test('expose: a queued registration says the control server is unreachable and it will be registered later', async (t) => {
  const a = await agent(t);
  a.control.exposeRow = { ...a.control.exposeRow, registration: 'queued' };
  const r = await a.run(['expose', 'payments']);
  t.is(r.code, 0);
  t.regex(
    r.stdout,
    /queued: the control server is unreachable; the agent registers it when the server is back/,
  );
  t.regex(r.stdout, /allowed +every member of the mesh/);
  const json = await a.run(['expose', 'payments', '--json']);
  t.is((JSON.parse(json.stdout) as ExposeRow).registration, 'queued');
});

test('unexpose: names the endpoint and the connections closed', async (t) => {
  const a = await agent(t);
  const r = await a.run(['unexpose', 'payments']);
  t.is(r.code, 0);
  t.is(
    r.stdout,
    'unexposed payments (endpoint host-a-payments unregistered; closed 2 connection(s) from consumers)\n',
  );
});

test('services: one line per endpoint with name@url and labels; --json is the report', async (t) => {
  const a = await agent(t);
  const r = await a.run(['services']);
  t.is(r.code, 0);
  const lines = r.stdout.trimEnd().split('\n');
  t.regex(lines[0] ?? '', /^SERVICE +ENDPOINTS +LABELS$/);
  t.regex(lines[1] ?? '', /^db-net +host-b-db-net@tcp:\/\/10\.0\.0\.2:5001 +region=eu$/);
  t.regex(lines[2] ?? '', /^db-net +host-c-db-net@tcp:\/\/10\.0\.0\.3:5001 +-$/);
  t.is(r.stderr, '');
  t.deepEqual(JSON.parse((await a.run(['services', '--json'])).stdout), sampleServices);
});

test('services: answered from the cache, it says so on stderr', async (t) => {
  const a = await agent(t);
  a.control.servicesReport = { ...sampleServices, source: 'cache' };
  const r = await a.run(['services']);
  t.is(r.code, 0);
  t.regex(r.stderr, /control server is unreachable; this list is the agent's cached copy/);
});

test('no agent running: exit 1, "not running" with the socket path, and how to start it', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-cli-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const path = join(dir, 'api.sock');
  for (const argv of [['status'], ['connect', 'db-net'], ['services', '--json']]) {
    const r = await cliWith([...argv, '--api', `unix://${path}`]);
    t.is(r.code, 1);
    t.is(r.stdout, '');
    t.is(
      r.stderr,
      `error: the nsm-agent daemon is not running (no socket at ${path})\nhint: start it: systemctl start nsm-agent (or nsm-agent run)\n`,
    );
  }
});

test('where the agent is: --api, else $NSM_AGENT_API, else agent.listen.api in the config', async (t) => {
  const a = await agent(t);
  const elsewhere = `unix://${join(a.dir, 'other.sock')}`;
  // The environment alone.
  t.is((await cliWith(['status'], { env: { NSM_AGENT_API: a.url } })).code, 0);
  // --api wins over the environment.
  const r = await cliWith(['status', '--api', a.url], { env: { NSM_AGENT_API: elsewhere } });
  t.is(r.code, 0);
  // The config file (via --config and via $NSM_AGENT_CONFIG).
  const config = join(a.dir, 'config.json');
  writeFileSync(config, JSON.stringify({ agent: { listen: { api: a.url } } }));
  t.is((await cliWith(['--config', config, 'status'])).code, 0);
  t.is((await cliWith(['services'], { env: { NSM_AGENT_CONFIG: config } })).code, 0);
  // And the environment wins over the config.
  const viaEnv = await cliWith(['--config', config, 'status'], { env: { NSM_AGENT_API: elsewhere } });
  t.is(viaEnv.code, 1);
  t.regex(viaEnv.stderr, /other\.sock/);
});

test('without any setting, the default socket under /run/nsm-agent is used', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-cli-api-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  // A config path that does not exist: built-in defaults, as on a host without a config file.
  const r = await cliWith(['--config', join(dir, 'none.json'), 'status']);
  if (r.code === 0) {
    t.pass('an agent is running on this machine');
    return;
  }
  t.regex(r.stderr, /\/run\/nsm-agent\/api\.sock/);
});

test('--api that is not a unix socket URL: exit 1 with the form expected', async (t) => {
  const r = await cliWith(['status', '--api', 'tcp://127.0.0.1:80']);
  t.is(r.code, 1);
  t.regex(r.stderr, /error: 'tcp:\/\/127\.0\.0\.1:80' is not a local API address/);
  t.regex(r.stderr, /hint: .*unix:\/\/\/absolute\/path\.sock/);
});

test('Ctrl-C during connect abandons the request and the daemon sees it go away', async (t) => {
  const a = await agent(t);
  a.control.hang.add('connect');
  const stop = new AbortController();
  const aborted = a.control.nextAbort();
  const running = cliWith(['connect', 'db-net', '--api', a.url], { stopSignal: stop.signal });
  while (a.control.calls.length === 0) await new Promise((r) => setTimeout(r, 10));
  stop.abort(new Error('received SIGINT'));
  const r = await running;
  t.is(r.code, 1);
  t.regex(r.stderr, /cancelled/);
  t.true((await aborted).aborted);
});
