// etcds://: TLS to a real etcd with client-certificate auth. What an operator sees for each
// mistake (precise message, what to do), two stores sharing one TLS etcd, and a 3-member cluster
// on loopback where the member in use dies.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { EtcdStore } from '../../../src/store/index.js';
import type { EtcdStoreOptions, WatchEvent } from '../../../src/store/index.js';
import { createEtcdTls, etcdAvailable, freePort, startEtcd, startEtcdCluster } from '../../helpers/etcd.js';
import type { EtcdCluster, EtcdProcess } from '../../helpers/etcd.js';
import { createEtcdCa, writeCaFile, writeTlsCert } from '../../helpers/etcd-pki.js';

const bytes = (s: string): Uint8Array => new TextEncoder().encode(s);
const keyOf = (e: WatchEvent): string => (e.type === 'put' ? e.entry.key : e.key);

let etcd: EtcdProcess | undefined;
/** Its certificate names only DNS localhost, so dialling it by IP is a name mismatch. */
let misnamed: EtcdProcess | undefined;
let cluster: EtcdCluster | undefined;
/** Plaintext, for etcds:// pointed at an etcd without TLS. */
let plain: EtcdProcess | undefined;
const dir = mkdtempSync(join(tmpdir(), 'nsm-etcd-tls-test-'));

test.before(async () => {
  if (!etcdAvailable()) return;
  [etcd, misnamed, cluster, plain] = await Promise.all([
    startEtcd({ tls: true }),
    startEtcd({ tls: { serverDns: ['localhost'], serverIps: [] } }),
    startEtcdCluster({ size: 3, tls: true }),
    startEtcd(),
  ]);
});
test.after.always(async () => {
  await Promise.all([etcd?.stop(), misnamed?.stop(), cluster?.stop(), plain?.stop()]);
  rmSync(dir, { recursive: true, force: true });
});

const it = etcdAvailable() ? test : test.skip;
const serial = etcdAvailable() ? test.serial : test.serial.skip;

async function refused(
  t: ExecutionContext,
  options: EtcdStoreOptions,
): Promise<{ code: string | undefined; message: string; ms: number }> {
  const started = Date.now();
  const e = await t.throwsAsync(EtcdStore.open({ connectTimeoutMs: 3_000, ...options }));
  return { code: (e as { code?: string }).code, message: e.message, ms: Date.now() - started };
}

/** Collects `n` events or gives up after `ms`. */
async function collect(iterable: AsyncIterable<WatchEvent>, n: number, ac: AbortController, ms = 10_000) {
  const out: WatchEvent[] = [];
  const timer = setTimeout(() => ac.abort(), ms);
  for await (const e of iterable) {
    out.push(e);
    if (out.length >= n) break;
  }
  clearTimeout(timer);
  return out;
}

it('etcds:// with the CA and a client certificate works, by IP and by DNS name (both SANs checked)', async (t) => {
  const byIp = await EtcdStore.open({ url: etcd!.url, tls: etcd!.tls!.storeTls });
  const byName = await EtcdStore.open({
    url: etcd!.url.replace('127.0.0.1', 'localhost'),
    tls: etcd!.tls!.storeTls,
  });
  try {
    await byIp.put('/tls/one', bytes('1'));
    t.deepEqual(
      (await byName.list('/tls/')).entries.map((e) => e.key),
      ['/tls/one'],
    );
    t.regex(byIp.description, /^etcds:\/\/127\.0\.0\.1:\d+\/nsm-agent\/$/);
  } finally {
    await byIp.close();
    await byName.close();
  }
});

it('two stores on one TLS etcd: a watch on one sees writes and lease expiry through the other', async (t) => {
  const a = await EtcdStore.open({ url: etcd!.url, tls: etcd!.tls!.storeTls });
  const b = await EtcdStore.open({ url: etcd!.url, tls: etcd!.tls!.storeTls });
  try {
    const start = await a.list('/shared/');
    const ac = new AbortController();
    const events = collect(a.watch('/shared/', { afterRevision: start.revision, signal: ac.signal }), 2, ac);
    const lease = await b.grantLease(1_000);
    await b.put('/shared/nse', bytes('one'), { lease });
    t.deepEqual(
      (await events).map((e) => [e.type, keyOf(e)]),
      [
        ['put', '/shared/nse'],
        ['delete', '/shared/nse'],
      ],
    );
  } finally {
    await a.close();
    await b.close();
  }
});

it('missing or unreadable TLS files are CONFIG_INVALID naming the file and the flag, before any connection', async (t) => {
  const good = etcd!.tls!.storeTls;
  const missing = await refused(t, { url: etcd!.url, tls: { ...good, caFile: join(dir, 'nope.pem') } });
  t.is(missing.code, 'CONFIG_INVALID');
  t.regex(missing.message, /cannot read the etcd CA file .*nope\.pem \(--store-ca\): no such file/);
  const notPem = join(dir, 'not-a-ca.pem');
  writeFileSync(notPem, 'hello\n');
  const empty = await refused(t, { url: etcd!.url, tls: { ...good, caFile: notPem } });
  t.regex(empty.message, /not-a-ca\.pem \(--store-ca\) holds no PEM certificate/);
  const noKey = await refused(t, { url: etcd!.url, tls: { caFile: good.caFile, certFile: good.certFile! } });
  t.regex(noKey.message, /needs both --store-cert and --store-key; only --store-cert was given/);
  const noCa = await refused(t, { url: etcd!.url });
  t.regex(noCa.message, /needs the CA that signed etcd’s server certificate; pass --store-ca/);
  const plain = await refused(t, { url: etcd!.url.replace('etcds:', 'etcd:'), tls: good });
  t.regex(plain.message, /apply to etcds:\/\/ only/);
});

it('a client key that does not belong to the certificate is CONFIG_INVALID naming both files', async (t) => {
  const other = await writeTlsCert(etcd!.tls!.ca, dir, 'other-client', { usages: ['client'] });
  const r = await refused(t, {
    url: etcd!.url,
    tls: { ...etcd!.tls!.storeTls, keyFile: other.keyFile },
  });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(
    r.message,
    /client key .*other-client-key\.pem \(--store-key\) does not belong to the certificate .*client\.pem/,
  );
  const serverOnly = await writeTlsCert(etcd!.tls!.ca, dir, 'server-only', { usages: ['server'] });
  const eku = await refused(t, { url: etcd!.url, tls: { ...etcd!.tls!.storeTls, ...serverOnly } });
  t.regex(eku.message, /does not allow client authentication/);
});

it('etcd’s certificate not signed by --store-ca: CONFIG_INVALID at once, not after the connect timeout', async (t) => {
  const strangerCa = writeCaFile(await createEtcdCa('stranger.test'), dir, 'stranger-ca');
  const r = await refused(t, {
    url: etcd!.url,
    tls: { ...etcd!.tls!.storeTls, caFile: strangerCa },
    connectTimeoutMs: 20_000,
  });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(
    r.message,
    /etcd’s server certificate at 127\.0\.0\.1:\d+ is not signed by the CA in .*stranger-ca\.pem \(--store-ca\)/,
  );
  t.regex(r.message, /point --store-ca at the CA that issued etcd’s --cert-file/);
  t.true(r.ms < 10_000, `${r.ms} ms`);
});

it('etcd’s certificate not issued for the name dialled: CONFIG_INVALID saying which name', async (t) => {
  const r = await refused(t, { url: misnamed!.url, tls: misnamed!.tls!.storeTls, connectTimeoutMs: 20_000 });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(r.message, /etcd’s server certificate at 127\.0\.0\.1:\d+ is not issued for 127\.0\.0\.1/);
  t.regex(r.message, /subject alternative name/);
  t.true(r.ms < 10_000, `${r.ms} ms`);
});

it('etcd requires a client certificate and none was given: CONFIG_INVALID pointing at --store-cert/--store-key', async (t) => {
  const r = await refused(t, {
    url: etcd!.url,
    tls: { caFile: etcd!.tls!.caFile },
    connectTimeoutMs: 20_000,
  });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(
    r.message,
    /etcd at 127\.0\.0\.1:\d+ requires a client certificate .* and none was given; pass --store-cert and --store-key/,
  );
  t.true(r.ms < 10_000, `${r.ms} ms`);
});

it('a client certificate from a CA etcd does not trust is refused by etcd, and said so', async (t) => {
  const other = await createEtcdTls(join(dir, 'other-pki'));
  const r = await refused(t, {
    url: etcd!.url,
    tls: { caFile: etcd!.tls!.caFile, certFile: other.clientCertFile, keyFile: other.clientKeyFile },
    connectTimeoutMs: 20_000,
  });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(
    r.message,
    /etcd at 127\.0\.0\.1:\d+ refused our client certificate .*client\.pem \(--store-cert\)/,
  );
});

it('plaintext etcd:// to a TLS etcd says to use etcds://', async (t) => {
  const r = await refused(t, { url: etcd!.url.replace('etcds:', 'etcd:') });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(r.message, /does not answer plaintext gRPC; if etcd serves TLS .* use etcds:\/\//);
});

it('etcds:// to an etcd without TLS says it does not answer TLS, at once', async (t) => {
  const r = await refused(t, {
    url: plain!.url.replace('etcd:', 'etcds:'),
    tls: etcd!.tls!.storeTls,
    connectTimeoutMs: 20_000,
  });
  t.is(r.code, 'CONFIG_INVALID');
  t.regex(r.message, /etcd at 127\.0\.0\.1:\d+ accepts connections but does not answer TLS/);
  t.regex(r.message, /use etcd:\/\/ for a plaintext etcd on loopback/);
  t.true(r.ms < 10_000, `${r.ms} ms`);
});

it('nothing listening: UNAVAILABLE after the connect timeout, saying connection refused', async (t) => {
  const port = await freePort();
  const r = await refused(t, {
    url: `etcds://127.0.0.1:${port}`,
    tls: etcd!.tls!.storeTls,
    connectTimeoutMs: 1_000,
  });
  t.is(r.code, 'UNAVAILABLE');
  t.regex(
    r.message,
    new RegExp(
      `cannot reach etcd at etcds://127\\.0\\.0\\.1:${port}: nothing accepts connections at 127\\.0\\.0\\.1:${port} \\(connection refused\\)`,
    ),
  );
  t.true(r.ms >= 1_000 && r.ms < 8_000, `${r.ms} ms`);
});

it('a cluster URL whose first member is down opens on the next one', async (t) => {
  const dead = await freePort();
  const url = cluster!.url.replace('etcds://', `etcds://127.0.0.1:${dead},`);
  const store = await EtcdStore.open({ url, tls: cluster!.tls!.storeTls });
  try {
    await store.put('/first-down', bytes('ok'));
    t.is((await store.get('/first-down'))?.modRevision !== undefined, true);
  } finally {
    await store.close();
  }
});

serial(
  '3-member TLS cluster: when the member in use dies, reads, keep-alives, writes and new watches go on through the others',
  async (t) => {
    const [first] = cluster!.members;
    const store = await EtcdStore.open({ url: cluster!.url, tls: cluster!.tls!.storeTls, timeoutMs: 3_000 });
    // Its first call after the member dies is a write: sent again only because it never left.
    const writer = await EtcdStore.open({ url: cluster!.url, tls: cluster!.tls!.storeTls, timeoutMs: 3_000 });
    const other = await EtcdStore.open({
      url: `etcds://${cluster!.url.split(',').slice(1).join(',')}`,
      tls: cluster!.tls!.storeTls,
    });
    try {
      const lease = await store.grantLease(10_000);
      await store.put('/ha/before', bytes('1'), { lease });
      const ac = new AbortController();
      const watching = (async () => {
        for await (const _ of store.watch('/ha/', { signal: ac.signal })) {
          // nothing is written while the first member lives
        }
      })();
      await first!.kill();
      t.is(
        ((await t.throwsAsync(watching)) as { code?: string }).code,
        'UNAVAILABLE',
        'the lost watch says so',
      );
      // If the dead member led the cluster, etcd refuses requests until it elects another leader
      // (about a second); those calls fail with UNAVAILABLE that says "retry", as they would with
      // etcd's own client. None may fail for lack of a connection: the store moves on by itself.
      await eventually(t, () => writer.put('/ha/written', bytes('w')));
      t.is(text((await eventually(t, () => store.get('/ha/before')))?.value), '1');
      t.is(text((await store.get('/ha/written'))?.value), 'w');
      await eventually(t, () => store.keepAlive(lease));
      const list = await store.list('/ha/');
      const ac2 = new AbortController();
      const seen = collect(other.watch('/ha/', { afterRevision: list.revision, signal: ac2.signal }), 1, ac2);
      const again = collect(
        store.watch('/ha/', { afterRevision: list.revision, signal: ac2.signal }),
        1,
        ac2,
      );
      await eventually(t, () => store.put('/ha/after', bytes('2')));
      t.deepEqual((await seen).map(keyOf), ['/ha/after'], 'another server’s watch sees the write');
      t.deepEqual((await again).map(keyOf), ['/ha/after'], 'a new watch on the failed-over store works');
    } finally {
      await store.close();
      await writer.close();
      await other.close();
    }
  },
);

function text(b: Uint8Array | undefined): string | undefined {
  return b === undefined ? undefined : new TextDecoder().decode(b);
}

/** Retries `fn` for up to 10 s while it fails with a retryable UNAVAILABLE that is not a lost connection. */
async function eventually<T>(t: ExecutionContext, fn: () => Promise<T>): Promise<T> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    try {
      return await fn();
    } catch (e: unknown) {
      const err = e as { code?: string; message?: string };
      t.is(err.code, 'UNAVAILABLE', String(e));
      t.regex(String(err.message), /can be retried/);
      t.notRegex(String(err.message), /No connection established/, 'the store did not move to a live member');
      t.log(`retrying after: ${err.message ?? ''}`);
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}
