import 'reflect-metadata';
import test from 'ava';
import { FakeClock, SequenceRandom } from '../../../src/host/fake/index.js';
import { initCa, loadCa, refreshServerSvid, renewalTime } from '../../../src/identity/index.js';
import { TD, tempDir } from './fixtures.js';

test('renewalTime is half the lifetime ±10 %', (t) => {
  const svid = { notBefore: 0, notAfter: 1000 };
  t.is(renewalTime(svid, new SequenceRandom('x', [0.5])), 500);
  t.is(renewalTime(svid, new SequenceRandom('x', [0])), 400);
  t.true(Math.abs(renewalTime(svid, new SequenceRandom('x', [0.9999999])) - 600) < 0.001);
});

test('refreshServerSvid re-issues the server SVID past half its life, keeps the key, and loadCa reads it', async (t) => {
  const dataDir = await tempDir(t);
  const clock = new FakeClock(Date.now());
  const pki = await initCa({ trustDomain: TD, dataDir, clock, serverSvidTtlMs: 600_000 });
  t.is(await refreshServerSvid(pki, { dataDir, clock, ttlMs: 600_000 }), pki, 'not due yet');
  await clock.advance(300_000);
  const next = await refreshServerSvid(pki, { dataDir, clock, ttlMs: 600_000 });
  t.not(next.server.serial, pki.server.serial);
  t.is(next.server.keyPem, pki.server.keyPem);
  t.true(next.server.notAfter > pki.server.notAfter);
  const loaded = await loadCa(dataDir);
  t.is(loaded.server.serial, next.server.serial);
});
