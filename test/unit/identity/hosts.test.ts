import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/index.js';
import { HostStore } from '../../../src/identity/index.js';
import type { NewHost } from '../../../src/identity/index.js';
import { MemoryStore } from '../../../src/store/index.js';

function host(hostId: string, hostname = hostId): NewHost {
  return {
    hostId,
    spiffeId: `spiffe://mesh.test/agent/${hostId}`,
    labels: { site: 'lab' },
    facts: { hostname, os: 'linux', arch: 'x64', agentVersion: '0.1.0' },
    tokenId: '0011223344556677',
    svidSerial: 'aa',
    svidExpiresAt: 1,
  };
}

function setup(): { clock: FakeClock; hosts: HostStore } {
  const clock = new FakeClock();
  return { clock, hosts: new HostStore({ store: new MemoryStore({ clock }), clock }) };
}

test('hosts are added, listed, found by id or hostname, and renewed', async (t) => {
  const { clock, hosts } = setup();
  await hosts.add(host('h1', 'db-1'));
  await clock.advance(1000);
  await hosts.add(host('h2', 'web-1'));
  t.deepEqual(
    (await hosts.list()).map((h) => h.hostId),
    ['h1', 'h2'],
  );
  t.is((await hosts.find('web-1')).hostId, 'h2');
  t.is((await hosts.find('h1')).facts.hostname, 'db-1');
  await clock.advance(5000);
  const renewed = await hosts.renewed('h1', { serial: 'bb', expiresAt: 99 });
  t.is(renewed.svidSerial, 'bb');
  t.is(renewed.lastSeenAt, clock.now());
  await t.throwsAsync(hosts.add(host('h1')), { message: /already enrolled/ });
  await t.throwsAsync(hosts.find('nope'), { message: /no enrolled host.*hosts list/ });
});

test('a hostname shared by two hosts is ambiguous and the error lists their ids', async (t) => {
  const { hosts } = setup();
  await hosts.add(host('h1', 'same'));
  await hosts.add(host('h2', 'same'));
  await t.throwsAsync(hosts.find('same'), { message: /2 hosts are named "same" \(h1, h2\)/ });
});

test('a revoked host cannot renew (R8) and stays listed as revoked', async (t) => {
  const { hosts } = setup();
  await hosts.add(host('h1'));
  const revoked = await hosts.revoke('h1');
  t.truthy(revoked.revokedAt);
  t.is((await hosts.revoke('h1')).revokedAt, revoked.revokedAt, 'idempotent');
  const e = await t.throwsAsync(hosts.renewed('h1', { serial: 'cc', expiresAt: 5 }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(e.message, /was revoked at .*enrolled again with a new token/);
  await t.throwsAsync(hosts.requireActive('h1'), { code: 'PERMISSION_DENIED' } as never);
  await t.throwsAsync(hosts.requireActive('zz'), { message: /not enrolled/ });
  t.truthy((await hosts.list())[0]?.revokedAt);
});

test('touch updates last seen at most once per resolution', async (t) => {
  const { clock, hosts } = setup();
  const added = await hosts.add(host('h1'));
  await clock.advance(30_000);
  await hosts.touch('h1');
  t.is((await hosts.get('h1'))?.lastSeenAt, added.lastSeenAt);
  await clock.advance(31_000);
  await hosts.touch('h1');
  t.is((await hosts.get('h1'))?.lastSeenAt, clock.now());
});
