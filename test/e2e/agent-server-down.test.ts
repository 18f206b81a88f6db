// Issue 5 acceptance: the mesh keeps working without its control server. The server is stopped for
// OUTAGE_MS: the existing connection keeps carrying traffic (a 10 ms ping loses nothing, the page
// still loads), a new `connect` fails saying the control server is unreachable, and once the server
// is back the registrations reappear (`services` on B lists web and web2 from the registry, each
// with an unexpired endpoint) and a new `connect` works.
import {
  connect,
  expose,
  getPage,
  pageFor,
  rootSerial,
  serveWeb,
  serviceIp,
  startPing,
  useLocalMesh,
  waitFor,
} from '../helpers/local-mesh.js';

const prefix = 'nsmags';
/** How long the control server stays down (the issue says 60 s). */
const OUTAGE_MS = 60_000;
/**
 * Bound for the registrations to be back once the server is: the agents' upstream backoff is capped
 * at 30 s (jittered), then the watch and the re-registration; 34 s seen after a 60 s outage.
 */
const REGISTRATIONS_BACK_WITHIN_MS = 60_000;
const mesh = useLocalMesh({ prefix, agents: 2 });

rootSerial(
  `control server down for ${OUTAGE_MS / 1000} s: traffic flows, new connects fail clearly, all recovers`,
  async (t) => {
    t.timeout(OUTAGE_MS + REGISTRATIONS_BACK_WITHIN_MS + 120_000);
    const m = mesh();
    const a = m.agent(1);
    const b = m.agent(2);
    await serveWeb(m, a);
    await expose(t, a, 'web');
    await expose(t, a, 'web2');
    const row = await connect(t, b, 'web');
    const ip = serviceIp(row);
    t.is((await getPage(b, ip)).body, pageFor(a));

    const ping = startPing(b, ip, 10);
    const down = performance.now();
    await m.server.stop();
    t.log(`control server stopped in ${Math.round(performance.now() - down)} ms`);

    // A new connect while the server is away: refused, saying why.
    const refused = await b.cli(['connect', 'web2'], { timeoutMs: 30_000 });
    t.log(
      `connect web2 during the outage: exit ${String(refused.code)} in ${refused.ms} ms: ${refused.stderr.trim()}`,
    );
    t.is(refused.code, 1);
    t.regex(refused.stderr, /control server/i);
    t.regex(refused.stderr, /unreachable|not reachable|cannot reach|no control server/i);

    // The existing connection carries traffic all along.
    const during = await getPage(b, ip, 8080, 2_000);
    t.is(during.body, pageFor(a), `the page still loads during the outage (${during.error})`);
    const statusDuring = await b.status();
    t.log(
      `B's view of the server during the outage: ${statusDuring.server.state} ${statusDuring.server.lastError ?? ''}`,
    );
    t.not(statusDuring.server.state, 'up');
    const left = OUTAGE_MS - (performance.now() - down);
    if (left > 0) await new Promise((r) => setTimeout(r, left));

    const back = performance.now();
    await m.server.start();
    t.log(
      `control server back after ${Math.round((back - down) / 1000)} s (started in ${Math.round(performance.now() - back)} ms)`,
    );
    const pings = await ping.stop();
    t.log(`ping every 10 ms through the outage: ${pings.summary}`);
    t.true(pings.transmitted > OUTAGE_MS / 20, `the ping ran throughout (${pings.transmitted} sent)`);
    t.is(pings.lost, 0, `${pings.summary}; unanswered: ${pings.lostSeqs.join(', ')}`);

    // Registrations reappear: B's `services` answers from the registry again and lists both.
    let seen = '';
    const listed = await waitFor(
      'web and web2 registered again',
      async () => {
        const s = await b.services();
        // A service counts once it has an endpoint whose registration has not expired.
        const now = Date.now();
        const live = s.services
          .filter((x) => x.endpoints.some((e) => e.expiresAt === undefined || Date.parse(e.expiresAt) > now))
          .map((x) => x.name);
        const onA = (await a.status()).exposes.map((e) => `${e.service}:${e.registration}`);
        seen = `B's services from the ${s.source}: ${JSON.stringify(s.services)}; A's exposes: ${onA.join(', ')}`;
        return s.source === 'registry' && live.includes('web') && live.includes('web2') ? s : undefined;
      },
      REGISTRATIONS_BACK_WITHIN_MS,
      200,
      () => seen,
    );
    t.log(`registrations back ${listed.ms} ms after the server started`);
    const status = await waitFor(
      "B's server session up",
      async () => {
        const s = await b.status();
        return s.server.state === 'up' ? s : undefined;
      },
      30_000,
      200,
    );
    t.log(`B's session to the server up ${status.ms} ms after registrations were seen`);

    const row2 = await connect(t, b, 'web2');
    t.is(row2.state, 'up');
    const page = await getPage(b, serviceIp(row2));
    t.is(page.body, pageFor(a), page.error);
  },
);
