// Root e2e: the forwarder reads a netns with one `ip -json -batch -` process (addresses, its routes,
// proxy entries) and gets exactly what one `ip -json` process per listing gives, on this machine's
// iproute2 — with IPv4 and IPv6, a route in another table, a link group, a proxy entry — and a
// netns that is gone reads as empty. Everything lives in netns the test makes and removes.
import test from 'ava';
import { ProcessRunner } from '../../src/host/command-runner.js';
import type { CommandRunner, RunOptions, RunResult } from '../../src/host/command-runner.js';
import { Netns } from '../../src/host/netns.js';
import {
  hostTarget,
  parseNetnsView,
  readNetnsText,
  readNetnsView,
  workloadTarget,
} from '../../src/forwarder/index.js';

const isRoot = process.getuid?.() === 0;
const serial = isRoot ? test.serial : test.serial.skip;
const runner = new ProcessRunner();
const name = 'nsmfwdr-h1';
const proto = 252;

class Counting implements CommandRunner {
  readonly lines: string[] = [];
  run(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.lines.push(argv.join(' '));
    return runner.run(argv, options);
  }
  runChecked(argv: readonly string[], options: RunOptions = {}): Promise<RunResult> {
    this.lines.push(argv.join(' '));
    return runner.runChecked(argv, options);
  }
}

const ip = (...words: string[]): Promise<RunResult> => runner.runChecked(['ip', '-n', name, ...words]);

test.before(async () => {
  if (!isRoot) return;
  await new Netns(runner).delete(name);
  await new Netns(runner).create(name);
  await ip('link', 'set', 'lo', 'up');
  await ip('link', 'add', 'nsmaaaaaaaa', 'mtu', '1420', 'type', 'veth', 'peer', 'name', 'eth7');
  await ip('link', 'set', 'dev', 'nsmaaaaaaaa', 'up', 'group', String(0x6e736d00 + proto));
  await ip('link', 'set', 'dev', 'eth7', 'up');
  await ip('addr', 'add', '10.77.0.1/24', 'dev', 'eth7');
  await ip('addr', 'add', 'fd00:77::1/64', 'dev', 'eth7', 'nodad');
  await ip('route', 'add', '10.78.0.0/16', 'dev', 'eth7', 'proto', String(proto));
  await ip('route', 'add', '10.79.0.5/32', 'via', '10.77.0.2', 'dev', 'eth7', 'proto', String(proto));
  await ip('route', 'add', 'fd00:78::/64', 'dev', 'eth7', 'proto', String(proto));
  await ip('route', 'add', '10.80.0.0/16', 'dev', 'eth7', 'table', '100', 'proto', String(proto));
  await ip('route', 'add', '10.81.0.0/16', 'dev', 'eth7', 'proto', 'static');
  await ip('neigh', 'add', 'proxy', '10.77.0.9', 'dev', 'nsmaaaaaaaa');
});

test.after.always(async () => {
  if (isRoot) await new Netns(runner).delete(name);
});

serial(
  'one ip process reads a netns as three listings do, with the proxy entries only where asked',
  async (t) => {
    const counting = new Counting();
    const target = hostTarget(counting, name);
    const text = await readNetnsText(target, proto, true);
    t.deepEqual(counting.lines, [`ip -n ${name} -json -batch -`]);
    const apart = async (...words: string[]): Promise<string> =>
      (await runner.runChecked(['ip', '-n', name, '-json', ...words])).stdout;
    const expected = parseNetnsView(
      {
        exists: true,
        addr: await apart('addr', 'show'),
        routes: await apart('route', 'show', 'table', 'all', 'proto', String(proto)),
        neigh: await apart('neigh', 'show', 'proxy'),
      },
      proto,
    );
    const view = parseNetnsView(text, proto);
    t.deepEqual(view, expected);
    // What is in it, so the comparison above is not of two empty reads.
    t.deepEqual(view.routes.map((r) => `${r.dst} ${r.table ?? 'main'}`).sort(), [
      '10.78.0.0/16 main',
      '10.79.0.5 main',
      '10.80.0.0/16 100',
      'fd00:78::/64 main',
    ]);
    t.true(view.addresses.some((a) => a.cidr === 'fd00:77::1/64'));
    t.deepEqual(view.groups, { nsmaaaaaaaa: String(0x6e736d00 + proto) });
    t.deepEqual(view.proxies, [{ dst: '10.77.0.9', dev: 'nsmaaaaaaaa' }]);
    // A workload netns: no proxy listing.
    const workload = await readNetnsView(workloadTarget(runner, { kind: 'named', name }), proto, false);
    t.deepEqual(workload, { ...expected, proxies: [] });
  },
);

serial('a netns that is gone reads as empty, not as an error', async (t) => {
  const view = await readNetnsView(
    workloadTarget(runner, { kind: 'named', name: 'nsmfwdr-h9' }),
    proto,
    false,
  );
  t.false(view.exists);
  t.deepEqual(view.links, []);
});
