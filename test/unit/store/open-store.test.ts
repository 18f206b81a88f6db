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
  t.regex(bad.message, /etcd:\/\/host:port/);
  const remote = await t.throwsAsync(openStore('etcd://10.0.0.1:2379', { embeddedDir: '/nonexistent' }));
  t.is((remote as { code?: string }).code, 'CONFIG_INVALID');
});
