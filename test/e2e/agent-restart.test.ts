// Issue 5 acceptance: the data plane outlives the agent daemon. B's agent killed with SIGKILL while
// a ping runs every 10 ms to the service address: nothing lost, and the restarted agent adopts the
// connection (same id, same interface index, addresses, routes and WireGuard peer, same
// wireguard-go) instead of recreating it. A's agent restarted (SIGTERM, start again): B's
// connection heals within 2 s with no command, and traffic flows.
import {
  connect,
  connectionOf,
  dataplaneSnapshot,
  expose,
  getPage,
  pageFor,
  rootSerial,
  serveWeb,
  serviceIp,
  startPing,
  useLocalMesh,
  waitFor,
  wireguardGoPid,
} from '../helpers/local-mesh.js';
import type { ConnectionRow } from '../helpers/local-mesh.js';

const prefix = 'nsmagr';
/** The bound for B's connection to heal after A's agent came back. */
const HEAL_WITHIN_MS = 2_000;
const mesh = useLocalMesh({ prefix, agents: 2 });
let row: ConnectionRow | undefined;

/** B connected to A's web, the page reachable: the state both tests start from. */
async function connected(t: Parameters<typeof connect>[0]): Promise<ConnectionRow> {
  if (row !== undefined) return row;
  const a = mesh().agent(1);
  const b = mesh().agent(2);
  await serveWeb(mesh(), a);
  await expose(t, a, 'web');
  row = await connect(t, b, 'web');
  const page = await getPage(b, serviceIp(row));
  if (page.body !== pageFor(a)) throw new Error(`no page through the mesh: ${page.error}`);
  return row;
}

rootSerial(
  'kill -9 the agent on B under a 10 ms ping: 0 lost; the restarted agent adopts the connection',
  async (t) => {
    t.timeout(120_000);
    const b = mesh().agent(2);
    const before = await connected(t);
    const ip = serviceIp(before);
    const snapshot = await dataplaneSnapshot(b);
    const wgPid = await wireguardGoPid(b.wgDevice);
    t.true(snapshot.peers.length > 0, 'B has a WireGuard peer for the connection');

    const ping = startPing(b, ip, 10);
    await new Promise((r) => setTimeout(r, 500));
    const killedAt = performance.now();
    t.is(await b.kill('SIGKILL'), 'SIGKILL');
    await new Promise((r) => setTimeout(r, 500));
    await b.start();
    const readyMs = Math.round(performance.now() - killedAt);
    const adopted = await waitFor(
      "B's status lists the connection up again",
      async () => {
        const c = connectionOf(await b.status(), 'web');
        return c?.state === 'up' ? c : undefined;
      },
      10_000,
    );
    await new Promise((r) => setTimeout(r, 500));
    const pings = await ping.stop();
    t.log(
      `killed → ready ${readyMs} ms, → connection listed up ${adopted.ms} ms later; ping: ${pings.summary}`,
    );
    t.true(pings.transmitted > 100, `a ping every 10 ms ran throughout (${pings.transmitted} sent)`);
    t.is(pings.lost, 0, `${pings.summary}; unanswered: ${pings.lostSeqs.join(', ')}`);

    t.is(adopted.value.id, before.id, 'the same connection id');
    t.deepEqual(adopted.value.serviceAddresses, before.serviceAddresses);
    t.deepEqual(adopted.value.localAddresses, before.localAddresses);
    t.deepEqual(
      await dataplaneSnapshot(b),
      snapshot,
      'same interfaces (and indexes), addresses, routes, peers',
    );
    t.is(await wireguardGoPid(b.wgDevice), wgPid, 'the same wireguard-go (or none: kernel WireGuard)');
    // No operation on the data plane: what the restarted agent logged since it started.
    const since = b.logs().split('--- start ').at(-1) ?? '';
    const lines = since.split('\n').filter((l) => l.startsWith('{'));
    const adoptLine = lines.find((l) => l.includes('"msg":"data plane adopted'));
    t.regex(adoptLine ?? '', /"ops":0[,}]/, `adopted with no ops: ${adoptLine ?? 'no adoption logged'}`);
    const applied = lines.filter((l) => l.includes('"msg":"forwarder applied changes"'));
    t.deepEqual(applied, [], 'no forwarder changes after the restart');
    const page = await getPage(b, ip);
    t.is(page.status, 200, page.error);
  },
);

rootSerial("restart the agent on A: B's connection heals within 2 s without any command", async (t) => {
  t.timeout(120_000);
  const a = mesh().agent(1);
  const b = mesh().agent(2);
  const before = await connected(t);
  const ip = serviceIp(before);
  const was = connectionOf(await b.status(), 'web');
  if (was === undefined) throw new Error('B has no web connection before the restart');

  const ping = startPing(b, ip, 10);
  const stopped = performance.now();
  t.is(await a.kill('SIGTERM'), 0, 'SIGTERM stops the agent cleanly');
  const stopMs = Math.round(performance.now() - stopped);
  const startedAt = new Date();
  await a.start();
  const readyAt = performance.now();
  const healed = await waitFor(
    "B's connection healed",
    async () => {
      const c = connectionOf(await b.status(), 'web');
      if (c?.state !== 'up') return undefined;
      const refreshed = c.refreshedAt !== undefined && new Date(c.refreshedAt) > startedAt;
      return c.heals > was.heals || refreshed ? c : undefined;
    },
    15_000,
  );
  const healMs = Math.round(performance.now() - readyAt);
  const page = await getPage(b, ip, 8080, 2_000);
  const pings = await ping.stop();
  t.log(
    `A stopped in ${stopMs} ms; A ready → B healed in ${healMs} ms (heals ${was.heals} → ${healed.value.heals}, refreshedAt ${healed.value.refreshedAt ?? '-'}); ping during: ${pings.summary}`,
  );
  t.true(
    healMs <= HEAL_WITHIN_MS,
    `healed in ${healMs} ms (bound ${HEAL_WITHIN_MS} ms, status polls included)`,
  );
  t.is(healed.value.id, before.id, 'the same connection, healed in place');
  t.is(page.status, 200, page.error);

  // Traffic flows after the heal: a fresh 10 ms ping loses nothing.
  const after = startPing(b, ip, 10);
  await new Promise((r) => setTimeout(r, 1_000));
  const clean = await after.stop();
  t.log(`after the heal: ${clean.summary}`);
  t.true(clean.transmitted > 50);
  t.is(clean.lost, 0, `${clean.summary}; unanswered: ${clean.lostSeqs.join(', ')}`);
});

rootSerial(
  "A's WireGuard device lost (wireguard-go killed): A's agent repairs its data plane and B's traffic comes back by itself",
  async (t) => {
    t.timeout(120_000);
    const a = mesh().agent(1);
    const b = mesh().agent(2);
    const ip = serviceIp(await connected(t));
    const wgPid = await wireguardGoPid(a.wgDevice);
    if (wgPid === undefined) {
      // Kernel WireGuard: losing the device is the same loss of A's data plane.
      const del = await a.exec(['ip', 'link', 'del', a.wgDevice]);
      t.is(del.code, 0, del.stderr);
    } else {
      process.kill(wgPid, 'SIGKILL');
    }
    const killedAt = performance.now();
    // The agent re-applies its desired state every 10 s: the device, its addresses, peers and routes.
    await waitFor(
      'the page through the mesh again',
      async () => {
        const page = await getPage(b, ip, 8080, 1_000);
        return page.status === 200 ? page : undefined;
      },
      30_000,
    );
    const ms = Math.round(performance.now() - killedAt);
    const newPid = await wireguardGoPid(a.wgDevice);
    const what = wgPid === undefined ? 'kernel device deleted' : `wireguard-go ${wgPid} killed`;
    t.log(`${what} → page through the mesh again after ${ms} ms (wireguard-go now ${String(newPid)})`);
    if (wgPid !== undefined) t.not(newPid, wgPid, 'a new wireguard-go');
    t.true(ms < 25_000, `repaired in ${ms} ms`);
    t.regex(a.logs(), /the data plane had drifted from what the connections need; repaired/);
  },
);
