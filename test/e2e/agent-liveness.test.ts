// Issue 5 "heal … reselects on data-plane loss (liveness ping)"; reliability.md scenario 21: the data
// path dies while the control plane is healthy. Hosts A and C both expose `web` (each serves its
// own page); B connects and lands on one of them, X. Then X's WireGuard UDP port is blocked in X's
// netns (an `ip rule … ipproto udp dport 51820 blackhole`: tcp:5001 between the agents still works, so
// no monitor stream breaks and control-plane heal sees nothing). B's agent pings the service address
// through the connection, misses its replies, and reselects: within seconds B's connection is on the
// other host, the page comes from there, and X serves nothing any more.
import type { ExecutionContext } from 'ava';
import {
  connect,
  connectionOf,
  expose,
  getPage,
  httpGet,
  pageFor,
  rootSerial,
  serveWeb,
  serviceIp,
  useLocalMesh,
  waitFor,
} from '../helpers/local-mesh.js';
import type { MeshAgent } from '../helpers/local-mesh.js';

const prefix = 'nsmagl';
const mesh = useLocalMesh({ prefix, agents: 3 });

const WG_PORT = '51820';

/**
 * Blocks WireGuard's UDP into and out of `agent`'s netns with policy routing (iproute2 only; this
 * kernel has no tc drop action): a `blackhole` rule for udp dport 51820 ahead of the `local` table,
 * which moves from priority 0 to 100 so that packets to the host's own address meet the rule too.
 * The returned function lifts the block (also run at teardown; the netns goes with the mesh).
 */
async function blockWireGuard(t: ExecutionContext, agent: MeshAgent): Promise<() => Promise<void>> {
  const run = async (args: readonly string[]): Promise<void> => {
    const r = await agent.exec(['ip', 'rule', ...args]);
    if (r.code !== 0) throw new Error(`ip rule ${args.join(' ')} in ${agent.netns}: ${r.stderr}`);
  };
  await run(['add', 'priority', '100', 'lookup', 'local']);
  await run(['del', 'priority', '0']);
  await run(['add', 'priority', '90', 'ipproto', 'udp', 'dport', WG_PORT, 'blackhole']);
  let lifted = false;
  const lift = async (): Promise<void> => {
    if (lifted) return;
    lifted = true;
    await run(['del', 'priority', '90']);
  };
  t.teardown(lift);
  return lift;
}

rootSerial(
  'a dead data path with a live control plane is found by the liveness ping and reselected onto the other endpoint',
  async (t) => {
    t.timeout(120_000);
    const a = mesh().agent(1);
    const b = mesh().agent(2);
    const c = mesh().agent(3);
    for (const host of [a, c]) {
      await serveWeb(mesh(), host);
      await expose(t, host, 'web');
    }
    // Both endpoints are in B's view of the registry before it connects.
    await waitFor(
      "B's registry shows both endpoints of web",
      async () =>
        ((await b.services()).services.find((s) => s.name === 'web')?.endpoints.length ?? 0) >= 2 ||
        undefined,
      15_000,
    );

    const row = await connect(t, b, 'web');
    const ip = serviceIp(row);
    const first = await getPage(b, ip);
    t.is(first.status, 200, first.error);
    const onA = first.body === pageFor(a);
    const [x, y] = onA ? [a, c] : [c, a];
    t.is(first.body, pageFor(x), 'the page of one of the two hosts');
    t.log(`B connected to ${x.netns} (endpoint ${row.endpoint ?? '?'}, service address ${ip})`);

    const lift = await blockWireGuard(t, x);
    const blockedAt = performance.now();
    t.log(`blocked WireGuard (udp ${WG_PORT}) in ${x.netns}; its tcp:5001 still answers`);

    // B's connection moves to Y by itself: the liveness ping, not a command.
    const moved = await waitFor(
      `B's connection to web moves to ${y.netns}`,
      async () => {
        const now = connectionOf(await b.status(), 'web');
        if (now?.state !== 'up' || now.endpoint === row.endpoint) return undefined;
        const page = await getPage(b, serviceIp(now), 8080, 0);
        return page.body === pageFor(y) ? now : undefined;
      },
      20_000,
      200,
    );
    const healMs = Math.round(performance.now() - blockedAt);
    t.log(
      `reselected onto ${moved.value.endpoint ?? '?'} ${healMs} ms after the block; the page comes from ${y.netns}`,
    );
    // Default check: a ping a second, dead after 3 missed, then the reselect itself.
    t.true(healMs < 10_000, `reselected within 10 s (took ${healMs} ms)`);
    t.is(moved.value.id, row.id, 'the same connection (same id), moved, not a new one');
    t.true(moved.value.heals >= 1, 'status counts the heal');

    const metrics = (await httpGet(b, 'http://127.0.0.1:9464/metrics')).body ?? '';
    t.regex(metrics, /^nsm_agent_heals_total\{result="dataplane_dead"\} [1-9]/m);
    t.regex(metrics, /^nsm_agent_heals_total\{result="reselected"\} [1-9]/m);
    t.regex(b.logs(), /data path of the connection is dead/);

    // The old path was closed through the control plane, which still worked: X serves nothing.
    await waitFor(
      `${x.netns} serves no connection for web`,
      async () =>
        (await x.status()).exposes.find((e) => e.service === 'web')?.connections === 0 ? true : undefined,
      5_000,
    );
    t.is((await y.status()).exposes.find((e) => e.service === 'web')?.connections, 1);

    // Lifting the block changes nothing for the moved connection: it stays where it is and up.
    await lift();
    await new Promise((r) => setTimeout(r, 4_000));
    const after = connectionOf(await b.status(), 'web');
    t.is(after?.endpoint, moved.value.endpoint, 'no flapping back');
    t.is(after?.state, 'up');
    const page = await getPage(b, serviceIp(moved.value));
    t.is(page.body, pageFor(y));

    const d = await b.cli(['disconnect', 'web']);
    t.is(d.code, 0, d.stderr);
    for (const host of [a, c]) {
      const un = await host.cli(['unexpose', 'web']);
      t.is(un.code, 0, un.stderr);
    }
  },
);
