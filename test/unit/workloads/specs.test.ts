import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import type { ConnectSpec, ExposeSpec } from '../../../src/config/index.js';
import { AgentError } from '../../../src/errors/agent-error.js';
import type { ErrorCode } from '../../../src/errors/agent-error.js';
import { WorkloadSpecs, connectionId, endpointName } from '../../../src/workloads/index.js';

const configPath = '/etc/nsm-agent/config.json';

interface Setup {
  stateDir: string;
  open: () => Promise<WorkloadSpecs>;
}

async function setup(
  t: ExecutionContext,
  config: { connects?: ConnectSpec[]; exposes?: ExposeSpec[] } = {},
): Promise<Setup> {
  const stateDir = await mkdtemp(join(tmpdir(), 'nsm-specs-'));
  t.teardown(() => rm(stateDir, { recursive: true, force: true }));
  const open = async (): Promise<WorkloadSpecs> => {
    const specs = new WorkloadSpecs({
      stateDir,
      configPath,
      config: { connects: config.connects ?? [], exposes: config.exposes ?? [] },
    });
    await specs.load();
    return specs;
  };
  return { stateDir, open };
}

const fromConfig = {
  connects: [
    { service: 'db', labels: {} },
    { service: 'web', netns: 'blue', labels: { app: 'shop' } },
  ],
  exposes: [{ service: 'payments', cidr: '169.254.0.0/16', labels: {} }],
};

async function rejects(t: ExecutionContext, p: Promise<unknown>, code: ErrorCode): Promise<AgentError> {
  const e = await t.throwsAsync(p, { instanceOf: AgentError });
  t.is(e.code, code, e.message);
  return e;
}

test('the config file specs are listed with source config; nothing else before the CLI adds some', async (t) => {
  const { open } = await setup(t, fromConfig);
  const specs = await open();
  t.deepEqual(specs.connects(), [
    { service: 'db', labels: {}, source: 'config' },
    { service: 'web', netns: 'blue', labels: { app: 'shop' }, source: 'config' },
  ]);
  t.deepEqual(specs.exposes(), [
    { service: 'payments', cidr: '169.254.0.0/16', labels: {}, source: 'config' },
  ]);
});

test("the CLI's connects and exposes survive a restart, in a versioned 0600 file", async (t) => {
  const { open, stateDir } = await setup(t, fromConfig);
  const specs = await open();
  t.deepEqual(await specs.addConnect({ service: 'web', labels: { tier: 'a' } }), {
    service: 'web',
    labels: { tier: 'a' },
    source: 'cli',
  });
  t.deepEqual(
    await specs.addExpose({ service: 'shop', labels: {}, allow: ['spiffe://mesh.example/agent/*'] }),
    {
      service: 'shop',
      cidr: '169.254.0.0/16',
      labels: {},
      allow: ['spiffe://mesh.example/agent/*'],
      source: 'cli',
    },
  );
  await specs.addExpose({ service: 'api', cidr: 'fd00:6e73:6d::/64', allow: [] });

  const path = join(stateDir, 'workloads.json');
  t.is((await stat(path)).mode & 0o777, 0o600);
  const stored = JSON.parse(await readFile(path, 'utf8')) as { version: number };
  t.is(stored.version, 1);

  const again = await open();
  t.deepEqual(
    again.connects().map((c) => [c.service, c.netns, c.source]),
    [
      ['db', undefined, 'config'],
      ['web', 'blue', 'config'],
      ['web', undefined, 'cli'],
    ],
  );
  t.deepEqual(again.exposes(), [
    { service: 'payments', cidr: '169.254.0.0/16', labels: {}, source: 'config' },
    {
      service: 'shop',
      cidr: '169.254.0.0/16',
      labels: {},
      allow: ['spiffe://mesh.example/agent/*'],
      source: 'cli',
    },
    { service: 'api', cidr: 'fd00:6e73:6d::/64', labels: {}, source: 'cli' },
  ]);

  await again.removeConnect('web');
  await again.removeExpose('shop');
  const third = await open();
  t.deepEqual(
    third.connects().map((c) => c.source),
    ['config', 'config'],
  );
  t.deepEqual(
    third.exposes().map((e) => e.service),
    ['payments', 'api'],
  );
});

test('a netns is one spelling: /run/netns/red and red are the same connect', async (t) => {
  const { open } = await setup(t);
  const specs = await open();
  t.is((await specs.addConnect({ service: 'web', netns: '/run/netns/red' })).netns, 'red');
  const e = await rejects(t, specs.addConnect({ service: 'web', netns: 'red' }), 'ALREADY_EXISTS');
  t.regex(e.message, /^"web" in netns red is already connected \(added with nsm-agent connect\)/);
  t.is(e.hint, 'nothing to do; to change its labels, run nsm-agent disconnect web --netns red first');
  await specs.addConnect({ service: 'web' });
  t.is((await specs.addConnect({ service: 'web', netns: '/proc/4242/ns/net' })).netns, '/proc/4242/ns/net');
  t.is((await specs.removeConnect('web', '/var/run/netns/red')).netns, 'red');
});

test('adding what the config declares is ALREADY_EXISTS naming the config file', async (t) => {
  const { open } = await setup(t, fromConfig);
  const specs = await open();
  let e = await rejects(
    t,
    specs.addConnect({ service: 'web', netns: '/var/run/netns/blue' }),
    'ALREADY_EXISTS',
  );
  t.is(
    e.message,
    `"web" in netns blue is already connected (declared in ${configPath}); nothing to do; see nsm-agent status`,
  );
  e = await rejects(t, specs.addExpose({ service: 'payments', cidr: '10.0.0.0/24' }), 'ALREADY_EXISTS');
  t.regex(
    e.message,
    /^"payments" is already exposed \(cidr 169\.254\.0\.0\/16, declared in \/etc\/nsm-agent\/config\.json\)/,
  );
  t.regex(e.hint ?? '', /edit "exposes" in \/etc\/nsm-agent\/config\.json/);

  await specs.addExpose({ service: 'shop' });
  e = await rejects(t, specs.addExpose({ service: 'shop' }), 'ALREADY_EXISTS');
  t.is(e.hint, 'nothing to do; to change it, run nsm-agent unexpose shop first');
});

test('removing a config-declared one is FAILED_PRECONDITION: remove it there', async (t) => {
  const { open } = await setup(t, fromConfig);
  const specs = await open();
  let e = await rejects(t, specs.removeConnect('db'), 'FAILED_PRECONDITION');
  t.regex(e.message, /^the connect to "db" is declared in \/etc\/nsm-agent\/config\.json; remove it there/);
  e = await rejects(t, specs.removeConnect('web', 'blue'), 'FAILED_PRECONDITION');
  t.regex(e.message, /"web" in netns blue is declared in/);
  e = await rejects(t, specs.removeExpose('payments'), 'FAILED_PRECONDITION');
  t.regex(
    e.message,
    /^the expose of "payments" is declared in \/etc\/nsm-agent\/config\.json; remove it there/,
  );
  t.is(specs.connects().length, 2);
});

test('removing an unknown one is NOT_FOUND listing what exists', async (t) => {
  const { open } = await setup(t, fromConfig);
  const specs = await open();
  let e = await rejects(t, specs.removeConnect('web'), 'NOT_FOUND');
  t.regex(e.message, /^there is no connect to "web"; connects: "db", "web" in netns blue;/);
  t.regex(e.hint ?? '', /same --netns/);
  e = await rejects(t, specs.removeExpose('shop'), 'NOT_FOUND');
  t.regex(e.message, /^"shop" is not exposed; exposed: "payments";/);

  const empty = await (await setup(t)).open();
  t.regex((await rejects(t, empty.removeConnect('web'), 'NOT_FOUND')).message, /there are no connects/);
  t.regex((await rejects(t, empty.removeExpose('web'), 'NOT_FOUND')).message, /nothing is exposed/);
});

test('bad input is INVALID_ARGUMENT saying what a good value is', async (t) => {
  const specs = await (await setup(t)).open();
  const cases: [Promise<unknown>, RegExp][] = [
    [
      specs.addConnect({ service: 'Web' }),
      /"Web" is not a valid service name to connect.*did you mean "web"\?/,
    ],
    [specs.addConnect({ service: 'web_1' }), /not a valid service name.*lowercase DNS label/],
    [
      specs.addExpose({ service: 'web@other.mesh' }),
      /not a valid service name to expose.*becomes <service>\.nsm/,
    ],
    [specs.addExpose({ service: `a${'b'.repeat(63)}` }), /not a valid service name/],
    [
      specs.addExpose({ service: 'web', cidr: '169.254.0.0' }),
      /"169\.254\.0\.0" is not an IPv4 or IPv6 CIDR/,
    ],
    [
      specs.addExpose({ service: 'web', cidr: '10.1.2.3/16' }),
      /--cidr 10\.1\.2\.3\/16 has host bits set; give the network address: --cidr 10\.1\.0\.0\/16/,
    ],
    [specs.addExpose({ service: 'web', cidr: '10.1.2.3/32' }), /too small for service "web"/],
    [
      specs.addExpose({ service: 'web', allow: ['*'] }),
      /--allow \*: "\*" is not a SPIFFE ID pattern.*spiffe:\/\/mesh\.example\/agent\//,
    ],
    [
      specs.addConnect({ service: 'web', netns: 'a/b' }),
      /"a\/b" is not a network namespace; give a name under \/run\/netns/,
    ],
    [specs.addConnect({ service: 'web', netns: '/var/lib/../run/x' }), /is not a network namespace/],
    [specs.addConnect({ service: 'web', labels: { '-x': 'y' } }), /label key "-x" is not valid/],
    [specs.addConnect({ service: 'web', labels: { x: 'y'.repeat(257) } }), /at most 256 characters/],
  ];
  for (const [p, pattern] of cases) {
    const e = await rejects(t, p, 'INVALID_ARGUMENT');
    t.regex(e.message, pattern);
    t.truthy(e.hint, e.message);
  }
  t.deepEqual(specs.connects(), []);
  t.deepEqual(specs.exposes(), []);
  t.deepEqual((await specs.addConnect({ service: 'db-net@other.mesh' })).service, 'db-net@other.mesh');
});

test('a stored file of another version is refused with what to do', async (t) => {
  const { stateDir } = await setup(t);
  await writeFile(
    join(stateDir, 'workloads.json'),
    JSON.stringify({ version: 2, connects: [], exposes: [] }),
  );
  const specs = new WorkloadSpecs({ stateDir, configPath, config: { connects: [], exposes: [] } });
  const e = await rejects(t, specs.load(), 'FAILED_PRECONDITION');
  t.regex(e.message, /workloads\.json has format version 2, but this nsm-agent reads version 1/);
  t.regex(e.hint ?? '', /written by a newer nsm-agent: run that version again, or move it aside/);
});

test('a damaged stored file is CONFIG_INVALID naming the file and entry', async (t) => {
  const { stateDir } = await setup(t);
  const path = join(stateDir, 'workloads.json');
  const load = () =>
    new WorkloadSpecs({ stateDir, configPath, config: { connects: [], exposes: [] } }).load();

  await writeFile(path, '{"version": 1, "connects": [');
  let e = await rejects(t, load(), 'CONFIG_INVALID');
  t.regex(e.message, /workloads\.json is not valid JSON/);
  t.regex(e.hint ?? '', /move it aside to start without the connects and exposes added with the CLI/);

  await writeFile(path, '[]');
  t.regex((await rejects(t, load(), 'CONFIG_INVALID')).message, /has no format version/);

  await writeFile(
    path,
    JSON.stringify({ version: 1, connects: [{ service: 'ok' }, { service: 'Bad' }], exposes: [] }),
  );
  e = await rejects(t, load(), 'CONFIG_INVALID');
  t.regex(e.message, /workloads\.json connects\[1\]: "Bad" is not a valid service name/);

  await writeFile(path, JSON.stringify({ version: 1, connects: [], exposes: [{ service: 'x', cidr: 5 }] }));
  t.regex((await rejects(t, load(), 'CONFIG_INVALID')).message, /exposes\[0\]: "cidr" is not a string/);
});

test('a CLI spec the config file now declares too is reported and the config one wins', async (t) => {
  const { open, stateDir } = await setup(t);
  const cli = await open();
  await cli.addConnect({ service: 'db', labels: { from: 'cli' } });
  await cli.addExpose({ service: 'payments', cidr: '10.0.0.0/24' });
  const specs = new WorkloadSpecs({ stateDir, configPath, config: fromConfig });
  const report = await specs.load();
  t.deepEqual(report.shadowed, [
    `connect "db" is in ${configPath} too`,
    `expose "payments" is in ${configPath} too`,
  ]);
  t.deepEqual(
    specs.connects().map((c) => [c.service, c.source, c.labels]),
    [
      ['db', 'config', {}],
      ['web', 'config', { app: 'shop' }],
    ],
  );
  t.deepEqual(
    specs.exposes().map((e) => [e.service, e.cidr, e.source]),
    [['payments', '169.254.0.0/16', 'config']],
  );
});

test('a state dir that cannot be read is FAILED_PRECONDITION', async (t) => {
  const { stateDir } = await setup(t);
  const notADir = join(stateDir, 'not-a-dir');
  await writeFile(notADir, '');
  const specs = new WorkloadSpecs({ stateDir: notADir, configPath, config: { connects: [], exposes: [] } });
  const e = await rejects(t, specs.load(), 'FAILED_PRECONDITION');
  t.regex(e.message, /cannot read .*not-a-dir\/workloads\.json/);
  t.truthy(e.hint);
});

test('saving fails cleanly when the state dir goes away under a file', async (t) => {
  const { stateDir, open } = await setup(t);
  const specs = await open();
  await rm(stateDir, { recursive: true });
  await writeFile(stateDir, 'now a file');
  const e = await rejects(t, specs.addConnect({ service: 'web' }), 'FAILED_PRECONDITION');
  t.regex(e.message, /cannot save .*workloads\.json; nothing was changed/);
  t.deepEqual(specs.connects(), []);
  await rm(stateDir);
});

test('using the specs before load() is an INTERNAL error', (t) => {
  const specs = new WorkloadSpecs({
    stateDir: '/nonexistent',
    configPath,
    config: { connects: [], exposes: [] },
  });
  t.is(t.throws(() => specs.connects(), { instanceOf: AgentError }).code, 'INTERNAL');
});

test('connection ids are stable per spec and differ per netns; endpoint names are <agent>-<service>', (t) => {
  const host = connectionId({ service: 'web' }, 'beta');
  t.is(host, 'beta-web-host');
  const red = connectionId({ service: 'web', netns: 'red' }, 'beta');
  t.regex(red, /^beta-web-[0-9a-f]{8}$/);
  t.is(connectionId({ service: 'web', netns: '/run/netns/red' }, 'beta'), red);
  t.not(connectionId({ service: 'web', netns: 'blue' }, 'beta'), red);
  t.not(connectionId({ service: 'web', netns: 'red' }, 'gamma'), red);
  t.is(endpointName('alpha', 'web'), 'alpha-web');
});

test('concurrent connects share writes: all 20 are kept, a duplicate among them fails alone, each resolves once on disk', async (t) => {
  const { open, stateDir } = await setup(t, fromConfig);
  const specs = await open();
  const services = Array.from({ length: 20 }, (_, i) => `svc${i}`);
  const results = await Promise.allSettled([
    ...services.map((service) => specs.addConnect({ service })),
    specs.addConnect({ service: 'svc3' }),
  ]);
  t.deepEqual(
    results.slice(0, 20).map((r) => r.status),
    services.map(() => 'fulfilled'),
  );
  const dup = results[20];
  t.is(dup?.status, 'rejected');
  t.is(((dup as PromiseRejectedResult).reason as AgentError).code, 'ALREADY_EXISTS');
  const onDisk = JSON.parse(await readFile(join(stateDir, 'workloads.json'), 'utf8')) as {
    connects: { service: string }[];
  };
  t.deepEqual(
    onDisk.connects.map((c) => c.service),
    services,
  );
  const reopened = await open();
  t.is(reopened.connects().filter((c) => c.source === 'cli').length, 20);
});
