// Issue 5 acceptance, as a user runs it: a control server and two agent daemons, each host its own
// network namespace (scripts/lib/local-mesh.ts). Host A serves a page with a plain
// `python3 -m http.server`; `nsm-agent expose web` on A, `nsm-agent connect web` on B, and an HTTP
// GET from B's host netns to the service address returns the page; `disconnect` leaves both hosts'
// links, addresses, routes and WireGuard peers exactly as before the connect. A client whose SPIFFE
// ID the expose policy does not allow gets PermissionDenied and nothing is created on its host.
import { readFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import {
  agentCommand,
  apiCall,
  connect,
  connectionOf,
  dataplaneSnapshot,
  expose,
  getPage,
  httpGet,
  pageFor,
  repoRoot,
  rootSerial,
  serveWeb,
  serviceIp,
  useLocalMesh,
  waitFor,
} from '../helpers/local-mesh.js';
import type { DataplaneSnapshot } from '../helpers/local-mesh.js';

const prefix = 'nsmagc';
const mesh = useLocalMesh({ prefix, agents: 2 });

const same = (a: DataplaneSnapshot, b: DataplaneSnapshot): boolean => JSON.stringify(a) === JSON.stringify(b);

rootSerial(
  'A exposes web, B connects, GET from B returns the page; disconnect leaves no trace',
  async (t) => {
    t.timeout(120_000);
    const a = mesh().agent(1);
    const b = mesh().agent(2);
    await serveWeb(mesh(), a);
    const exposed = await expose(t, a, 'web');
    t.is(exposed.service, 'web');
    t.regex(exposed.serviceAddress, /^169\.254\.\d+\.\d+\/\d+$/, 'a stable address in 169.254.0.0/16');

    const beforeA = await dataplaneSnapshot(a);
    const beforeB = await dataplaneSnapshot(b);
    const row = await connect(t, b, 'web');
    t.is(row.state, 'up');
    const ip = serviceIp(row);
    t.regex(ip, /^169\.254\./);
    t.log(
      `service address ${ip}, B's side ${row.localAddresses.join(', ')}, interface ${row.interface ?? '-'}`,
    );

    const page = await getPage(b, ip);
    t.is(page.status, 200, page.error);
    t.is(page.body, pageFor(a), 'the page A serves');
    t.log(`GET http://${ip}:8080/ from B: HTTP ${String(page.status)} in ${page.ms} ms`);

    const statusB = await b.status();
    t.like(connectionOf(statusB, 'web'), { state: 'up', id: row.id });
    const servedA = (await a.status()).exposes.find((e) => e.service === 'web');
    t.is(servedA?.connections, 1, 'A serves one connection for web');

    // What an operator scrapes: B's /metrics (in its netns, on loopback) shows the connection up, its
    // setup time, the SVID's time left and the peer's handshake; A's shows the registry round trips.
    const metricsB = (await httpGet(b, 'http://127.0.0.1:9464/metrics')).body ?? '';
    t.regex(metricsB, /^nsm_agent_connections\{state="up"\} 1$/m);
    t.regex(metricsB, /^nsm_agent_connection_setup_seconds_count\{result="ok"\} [1-9]/m);
    t.regex(metricsB, /^nsm_agent_svid_expiry_seconds [1-9]/m);
    t.regex(metricsB, /^nsm_agent_wireguard_handshake_age_seconds\{peer="[^"]+"\} \d/m);
    const metricsA = (await httpGet(a, 'http://127.0.0.1:9464/metrics')).body ?? '';
    t.regex(metricsA, /^nsm_agent_registry_roundtrip_seconds_count\{method="nse\.register"\} [1-9]/m);
    t.regex(metricsA, /^nsm_agent_served_connections 1$/m);

    // The name in the connection's DNS context: B's hosts file (the bed's stand-in for /etc/hosts)
    // maps web.nsm to the service address while the connection is up.
    const hostsB = join(b.runDir, '..', 'hosts');
    t.regex(await readFile(hostsB, 'utf8'), new RegExp(`^${ip.replaceAll('.', '\\.')}\\s+web\\.nsm$`, 'm'));

    const during = await dataplaneSnapshot(b);
    t.notDeepEqual(during, beforeB, 'the connection shows on B (an address, route or peer)');

    const disconnected = await b.cli(['disconnect', 'web']);
    t.is(disconnected.code, 0, disconnected.stderr);
    t.log(`disconnect web on B: ${disconnected.ms} ms`);
    // B undoes its side before the CLI returns; A undoes its side when B's Close arrives.
    const cleanB = await waitFor(
      "B's data plane back to before",
      async () => (same(await dataplaneSnapshot(b), beforeB) ? true : undefined),
      5_000,
    );
    const cleanA = await waitFor(
      "A's data plane back to before",
      async () => (same(await dataplaneSnapshot(a), beforeA) ? true : undefined),
      5_000,
    );
    t.log(`no trace left: B after ${cleanB.ms} ms, A after ${cleanA.ms} ms`);
    t.deepEqual(await dataplaneSnapshot(b), beforeB);
    t.deepEqual(await dataplaneSnapshot(a), beforeA);
    t.is(connectionOf(await b.status(), 'web'), undefined, 'no connection listed on B');
    t.notRegex(await readFile(hostsB, 'utf8'), /web\.nsm/, 'the name is gone from the hosts file');
    const unserved = await waitFor(
      "A's expose of web serves no connection",
      async () =>
        (await a.status()).exposes.find((e) => e.service === 'web')?.connections === 0 ? true : undefined,
      5_000,
    );
    t.log(`A counts no connection for web ${unserved.ms} ms after the data planes were clean`);
    const gone = await getPage(b, ip, 8080, 0);
    t.is(gone.status, undefined, 'the service address no longer answers from B');
  },
);

rootSerial('a client whose SPIFFE ID the expose policy does not allow gets PermissionDenied', async (t) => {
  t.timeout(60_000);
  const a = mesh().agent(1);
  const b = mesh().agent(2);
  const other = `spiffe://${mesh().trustDomain}/agent/some-other-host`;
  await expose(t, a, 'web2', ['--allow', other]);
  const beforeA = await dataplaneSnapshot(a);
  const beforeB = await dataplaneSnapshot(b);

  // The code, as the local API answers it (what curl --unix-socket would show).
  const api = await apiCall(b, 'POST', '/v1/connect', { service: 'web2', labels: {} });
  t.is(api.status, 403);
  t.like(api.body, { error: { code: 'PERMISSION_DENIED' } });
  // And what a person running the CLI reads.
  const r = await b.cli(['connect', 'web2']);
  t.log(`connect web2 on B: exit ${String(r.code)} in ${r.ms} ms: ${r.stderr.trim()}`);
  t.is(r.code, 1);
  t.true(r.stderr.includes(b.spiffeId), 'it says which identity was refused');
  t.regex(r.stderr, /allow/i, 'and that the allow list is why');

  t.deepEqual(await dataplaneSnapshot(b), beforeB, 'no interface, address, route or peer on B');
  t.deepEqual(await dataplaneSnapshot(a), beforeA, 'nothing on A either');
  t.is(connectionOf(await b.status(), 'web2'), undefined, 'a refused connect is not kept');

  const un = await a.cli(['unexpose', 'web2']);
  t.is(un.code, 0, un.stderr);
});

rootSerial(
  'a second agent started on the same state and sockets refuses before touching anything',
  async (t) => {
    t.timeout(60_000);
    const b = mesh().agent(2);
    const before = await dataplaneSnapshot(b);
    const binary = process.env.NSM_AGENT_E2E_BINARY;
    const second = await b.exec(
      [
        ...agentCommand(binary === undefined || binary === '' ? undefined : resolve(repoRoot, binary)),
        'run',
        '--config',
        b.configPath,
        '--state-dir',
        b.stateDir,
        '--run-dir',
        b.runDir,
        '--listen-remote',
        'tcp://:5011',
        '--listen-metrics',
        '127.0.0.1:9474',
        '--hosts-file',
        'none',
      ],
      { timeoutMs: 30_000 },
    );
    t.is(second.code, 1, second.stderr);
    t.regex(second.stderr, /an nsm-agent is already running here/);
    t.regex(second.stderr, /hint: stop it first/);
    t.deepEqual(await dataplaneSnapshot(b), before, 'the running agent’s data plane is untouched');
    t.is((await b.status()).agent.ready, true, 'the running agent still answers');
  },
);
