// Root integration: the ip wrappers and the netns port against the real iproute2, inside a
// throwaway namespace (nothing in the root namespace is touched). Also measures what `ip -batch`
// saves: 200 routes in one exec against 200 execs.
import test from 'ava';
import { ProcessRunner } from '../../../src/host/command-runner.js';
import { Ip } from '../../../src/host/ip/index.js';
import { Netns } from '../../../src/host/netns.js';

// Shaped like a test bed name, so the leak checks of tests running alongside ignore it.
const ns = 'nsmipl-h1';
const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
const netns = new Netns(runner);
const ip = new Ip(runner, { netns: ns });

test.before(async () => {
  if (!isRoot) return;
  await netns.delete(ns);
  await netns.create(ns);
});

test.after.always(async () => {
  if (isRoot) await netns.delete(ns);
});

serial('links, addresses and routes round-trip through the real ip -json', async (t) => {
  t.true(await netns.exists(ns));
  await ip.setUp('lo');
  await ip.addVeth('v0', 'v1', { mtu: 1400 });
  await ip.addBridge('br0');
  await ip.setLink('v1', { master: 'br0', up: true });
  await ip.setLink('v0', { up: true, mtu: 1380 });
  await ip.setUp('br0');
  await ip.addAddress('v0', '10.55.0.1/24');
  await ip.addAddress('v0', 'fd55::1/64');
  await ip.replaceAddress('v0', 'fd55::1/64');
  await ip.addRoute({ dst: '10.56.0.0/16', dev: 'v0', protocol: 252 });
  await ip.addRoute({ dst: '10.57.0.0/16', gateway: '10.55.0.2', table: 100, protocol: 252, metric: 7 });

  const links = await ip.links();
  t.like(
    links.find((l) => l.name === 'v0'),
    { kind: 'veth', peer: 'v1', mtu: 1380, up: true },
  );
  t.like(
    links.find((l) => l.name === 'v1'),
    { kind: 'veth', master: 'br0' },
  );
  t.like(await ip.link('br0'), { kind: 'bridge' });
  t.is(await ip.link('nope0'), undefined);
  t.deepEqual(
    (await ip.addresses('v0')).filter((a) => a.scope === 'global').map((a) => a.cidr),
    ['10.55.0.1/24', 'fd55::1/64'],
  );
  t.deepEqual(await ip.routes({ protocol: 252 }), [
    { dst: '10.56.0.0/16', dev: 'v0', protocol: '252', scope: 'link' },
  ]);
  t.deepEqual(await ip.routes({ table: 100, protocol: 252 }), [
    { dst: '10.57.0.0/16', gateway: '10.55.0.2', dev: 'v0', table: '100', protocol: '252', metric: 7 },
  ]);
  t.deepEqual(await ip.routes({ table: 4242 }), [], 'a table that does not exist is empty');

  await ip.deleteRoute({ dst: '10.57.0.0/16', table: 100 });
  await ip.deleteAddress('v0', '10.55.0.1/24');
  await ip.deleteLink('v0');
  t.is(await ip.link('v1'), undefined, 'deleting one end of a veth removes both');
});

serial('200 routes: one ip -batch exec against 200 execs', async (t) => {
  await ip.addVeth('b0', 'b1');
  await ip.setUp('b0');
  const routes = (base: number): string[][] =>
    Array.from({ length: 200 }, (_, i) => [
      'route',
      'replace',
      `10.${base}.${i}.0/24`,
      'dev',
      'b0',
      'proto',
      '252',
    ]);

  let started = performance.now();
  await ip.batch(routes(60));
  const batchMs = performance.now() - started;

  started = performance.now();
  for (const words of routes(61)) await runner.runChecked(['ip', '-n', ns, ...words]);
  const singleMs = performance.now() - started;

  t.is((await ip.routes({ protocol: 252 })).length, 400);
  t.log(`200 routes: ip -batch ${batchMs.toFixed(0)} ms, 200 execs ${singleMs.toFixed(0)} ms`);
  t.true(batchMs < singleMs);

  started = performance.now();
  await ip.batch(
    routes(60).map((w) => ['route', 'del', ...w.slice(2)]),
    { force: true },
  );
  t.log(`200 route deletions via ip -batch: ${(performance.now() - started).toFixed(0)} ms`);
  t.is((await ip.routes({ protocol: 252 })).length, 200);
});
