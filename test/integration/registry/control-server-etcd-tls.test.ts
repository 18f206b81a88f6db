// Two control servers of one mesh (same CA, copied data dir, as a second host would get it) on
// one etcd over TLS with client certificates: what a host registers through one server reaches a
// watcher on the other, and a TLS mistake stops `server run` with the store's precise error.
import 'reflect-metadata';
import { cpSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { runCli } from '../../../src/cli/index.js';
import { initControlServer, startControlServer } from '../../../src/daemon/control-server.js';
import { handlers } from '../../../src/daemon/handlers.js';
import { systemClock } from '../../../src/host/index.js';
import { loadCa } from '../../../src/identity/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { etcdAvailable, startEtcd } from '../../helpers/etcd.js';
import type { EtcdProcess } from '../../helpers/etcd.js';
import { RegistryClient, TD, Watch, toolIdentity } from './fixtures.js';

let etcd: EtcdProcess | undefined;
test.before(async () => {
  if (etcdAvailable()) etcd = await startEtcd({ tls: true });
});
test.after.always(async () => {
  await etcd?.stop();
});

const it = etcdAvailable() ? test : test.skip;

it('two control servers on one TLS etcd: an NSE registered through one reaches a watch on the other', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'nsm-cs-etcds-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  const one = join(dataDir, 'one');
  const two = join(dataDir, 'two');
  await initControlServer({ trustDomain: TD, dataDir: one });
  cpSync(one, two, { recursive: true });
  const common = {
    listen: 'tcp://127.0.0.1:0',
    log: silentLogger(),
    store: etcd!.url,
    storeTls: etcd!.tls!.storeTls,
    registryExpirationMs: 30_000,
  };
  const serverOne = await startControlServer({ ...common, dataDir: one, hostname: 'cs-1' });
  t.teardown(() => serverOne.close());
  const serverTwo = await startControlServer({ ...common, dataDir: two, hostname: 'cs-2' });
  t.teardown(() => serverTwo.close());
  t.regex(serverOne.store, /^etcds:\/\/127\.0\.0\.1:\d+\/nsm-agent\/$/);

  const { svid, bundle } = await toolIdentity((await loadCa(one)).ca, dataDir, 'nse-1');
  const viaOne = new RegistryClient(t, serverOne.url, svid, bundle, systemClock);
  const viaTwo = new RegistryClient(t, serverTwo.url, svid, bundle, systemClock);

  const w = new Watch(viaTwo.nse.find({ networkServiceEndpoint: { name: 'shared-nse' }, watch: true }));
  t.teardown(() => w.cancel());
  t.true(await w.quiet(100));
  const { path } = await viaOne.registerNse({
    name: 'shared-nse',
    networkServiceNames: ['db-net'],
    url: 'tcp://10.0.0.1:5001',
  });
  t.is((await w.take(1, 5_000))[0]?.networkServiceEndpoint?.name, 'shared-nse');
  await viaOne.unregisterNse({ name: 'shared-nse' }, { path: path! });
  t.true((await w.take(1, 5_000))[0]?.deleted);
});

it('a control server whose etcd client certificate is missing does not start, and says what to pass', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'nsm-cs-etcds-bad-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  await initControlServer({ trustDomain: TD, dataDir });
  const e = await t.throwsAsync(
    startControlServer({
      dataDir,
      listen: 'tcp://127.0.0.1:0',
      log: silentLogger(),
      hostname: 'cs-bad',
      store: etcd!.url,
      storeTls: { caFile: etcd!.tls!.caFile },
    }),
  );
  t.is((e as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(e.message, /requires a client certificate .* pass --store-cert and --store-key/);
});

/** `nsm-agent server run …` in-process with the real handlers; stops it once it is listening. */
async function serverRun(args: readonly string[]): Promise<{ code: number; stderr: string }> {
  const stop = new AbortController();
  let stderr = '';
  const timer = setTimeout(() => stop.abort(), 20_000);
  try {
    const code = await runCli(
      ['--log-level', 'silent', 'server', 'run', '--listen', 'tcp://127.0.0.1:0', ...args],
      {
        stdout: { write: () => undefined },
        stderr: {
          write: (s: string) => {
            stderr += s;
            if (/admin socket/.test(stderr)) stop.abort();
          },
        },
        env: {},
        handlers: () => Promise.resolve(handlers),
        stopSignal: () => stop.signal,
      },
    );
    return { code, stderr };
  } finally {
    clearTimeout(timer);
  }
}

it('`server run --store etcds://… --store-ca --store-cert --store-key` serves on the TLS etcd; a missing flag is named', async (t) => {
  const dataDir = await mkdtemp(join(tmpdir(), 'nsm-cs-etcds-cli-'));
  t.teardown(() => rm(dataDir, { recursive: true, force: true }));
  await initControlServer({ trustDomain: TD, dataDir });
  const files = etcd!.tls!.storeTls;
  const ok = await serverRun([
    '--data-dir',
    dataDir,
    '--store',
    etcd!.url,
    '--store-ca',
    files.caFile,
    '--store-cert',
    files.certFile!,
    '--store-key',
    files.keyFile!,
  ]);
  t.is(ok.code, 0, ok.stderr);
  t.regex(
    ok.stderr,
    /control server listening on tcp:\/\/127\.0\.0\.1:\d+ \(store etcds:\/\/127\.0\.0\.1:\d+\/nsm-agent\/\)/,
  );

  const noCa = await serverRun(['--data-dir', dataDir, '--store', etcd!.url]);
  t.not(noCa.code, 0);
  t.regex(noCa.stderr, /needs the CA that signed etcd’s server certificate\nhint: pass --store-ca/);
  const noKey = await serverRun([
    '--data-dir',
    dataDir,
    '--store',
    etcd!.url,
    '--store-ca',
    files.caFile,
    '--store-cert',
    files.certFile!,
  ]);
  t.regex(noKey.stderr, /only --store-cert was given/);
  const embedded = await serverRun(['--data-dir', dataDir, '--store-ca', files.caFile]);
  t.not(embedded.code, 0);
  t.regex(embedded.stderr, /apply to an etcds:\/\/ store, and the store is embedded/);
  const remotePlain = await serverRun(['--data-dir', dataDir, '--store', 'etcd://10.9.9.9:2379']);
  t.regex(
    remotePlain.stderr,
    /etcd:\/\/ is plaintext \(loopback only\)\nhint: use etcds:\/\/10\.9\.9\.9:2379 with --store-ca/,
  );
});
