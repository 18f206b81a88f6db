import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { EmbeddedStore, openStore } from '../../../src/store/index.js';

test('no --store, or "embedded", opens the embedded store in the given directory', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-open-store-'));
  try {
    for (const spec of [undefined, 'embedded']) {
      const store = await openStore(spec, { embeddedDir: join(dir, 'store') });
      t.true(store instanceof EmbeddedStore);
      t.is(store.description, `embedded:${join(dir, 'store')}`);
      await store.close();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('an unknown store or a remote etcd is CONFIG_INVALID saying what is accepted', async (t) => {
  const bad = await t.throwsAsync(openStore('redis://x:1', { embeddedDir: '/nonexistent' }));
  t.is((bad as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(bad.message, /etcds:\/\/host:port\[,host:port…\]/);
  const remote = await t.throwsAsync(openStore('etcd://10.0.0.1:2379', { embeddedDir: '/nonexistent' }));
  t.is((remote as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(remote.message, /use etcds:\/\/10\.0\.0\.1:2379/);
});

test('TLS files with the embedded store, or etcds:// without a CA, are CONFIG_INVALID saying which flag', async (t) => {
  const embedded = await t.throwsAsync(
    openStore('embedded', { embeddedDir: '/nonexistent', etcdTls: { caFile: '/nonexistent/ca.pem' } }),
  );
  t.is((embedded as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(embedded.message, /--store-ca\/--store-cert\/--store-key apply to an etcds:\/\/ store/);
  const noCa = await t.throwsAsync(openStore('etcds://etcd.example:2379', { embeddedDir: '/nonexistent' }));
  t.is((noCa as { code?: string }).code, 'CONFIG_INVALID');
  t.regex(noCa.message, /pass --store-ca <file>/);
  const missingCa = await t.throwsAsync(
    openStore('etcds://etcd.example:2379', {
      embeddedDir: '/nonexistent',
      etcdTls: { caFile: '/nonexistent/ca.pem' },
    }),
  );
  t.regex(
    missingCa.message,
    /cannot read the etcd CA file \/nonexistent\/ca\.pem \(--store-ca\): no such file/,
  );
});
