// The local API over a real unix socket: the server in front of a fake AgentControl, reached by the
// typed client and by raw HTTP (what `curl --unix-socket` sends).
import { execFile, spawn } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { createLogger, silentLogger } from '../../../src/log/index.js';
import { LocalApiClient, maxRequestBodyBytes, startLocalApi } from '../../../src/localapi/index.js';
import type { LocalApi } from '../../../src/localapi/index.js';
import { FakeAgentControl, sampleServices, sampleStatus } from '../../helpers/fake-agent-control.js';

interface Served {
  readonly api: LocalApi;
  readonly control: FakeAgentControl;
  readonly client: LocalApiClient;
  readonly path: string;
  readonly dir: string;
  readonly logs: string[];
}

function tempDir(t: ExecutionContext): string {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-localapi-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function serve(t: ExecutionContext, path?: string): Promise<Served> {
  const dir = tempDir(t);
  const socket = path ?? join(dir, 'run', 'api.sock');
  const control = new FakeAgentControl();
  const logs: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void logs.push(s) } });
  const api = await startLocalApi({ url: `unix://${socket}`, control, log });
  t.teardown(() => api.close());
  return { api, control, client: new LocalApiClient(api.url), path: socket, dir, logs };
}

interface Raw {
  readonly status: number;
  readonly headers: Record<string, string | string[] | undefined>;
  readonly body: unknown;
}

/** One HTTP request as curl would send it, without the typed client's checks. */
function raw(path: string, method: string, urlPath: string, body?: string | Buffer): Promise<Raw> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: path, method, path: urlPath, headers: { host: 'local' } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString('utf8');
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: JSON.parse(text) as unknown });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

test('every route round-trips through the typed client', async (t) => {
  const { client, control } = await serve(t);
  t.deepEqual(await client.status(), sampleStatus);
  t.deepEqual(await client.services(), sampleServices);

  const row = await client.connect({ service: 'db-net', netns: 'blue', labels: { app: 'x' } });
  t.is(row.service, 'db-net');
  t.is(row.netns, 'blue');
  t.deepEqual(row.labels, { app: 'x' });
  t.deepEqual(control.calls.at(-1)?.request, { service: 'db-net', netns: 'blue', labels: { app: 'x' } });

  t.is((await client.disconnect({ service: 'db-net' })).service, 'db-net');
  t.deepEqual(control.calls.at(-1)?.request, { service: 'db-net' });

  const exposed = await client.expose({
    service: 'payments',
    cidr: '10.9.0.0/24',
    labels: {},
    allow: ['spiffe://mesh.example/agent/*'],
  });
  t.is(exposed.cidr, '10.9.0.0/24');
  t.deepEqual(exposed.allow, ['spiffe://mesh.example/agent/*']);
  t.is((await client.unexpose({ service: 'payments' })).service, 'payments');
  t.deepEqual(
    control.calls.map((c) => c.method),
    ['status', 'services', 'connect', 'disconnect', 'expose', 'unexpose'],
  );
});

test('raw HTTP, as curl --unix-socket sends it: JSON in, JSON out, labels optional', async (t) => {
  const { path, control } = await serve(t);
  const status = await raw(path, 'GET', '/v1/status');
  t.is(status.status, 200);
  t.regex(String(status.headers['content-type']), /application\/json/);
  t.deepEqual(status.body, sampleStatus);
  const connected = await raw(path, 'POST', '/v1/connect', '{"service":"db-net"}');
  t.is(connected.status, 200);
  t.deepEqual(control.calls.at(-1)?.request, { service: 'db-net', labels: {} });
});

test('curl --unix-socket reads the status', async (t) => {
  const { path } = await serve(t);
  const out = await new Promise<string | undefined>((resolve) => {
    execFile(
      'curl',
      ['-sS', '--unix-socket', path, 'http://local/v1/status'],
      { timeout: 10_000 },
      (e, stdout) => resolve(e === null ? stdout : undefined),
    );
  });
  if (out === undefined) {
    t.pass('curl is not installed here');
    return;
  }
  t.deepEqual(JSON.parse(out), sampleStatus);
});

test('an AgentError from the daemon reaches the client with its code, message, hint and details', async (t) => {
  const { client, control, path } = await serve(t);
  control.fail.set(
    'connect',
    new AgentError('NOT_FOUND', "no network service 'nope' in the mesh", {
      hint: 'list them: nsm-agent services',
      details: { service: 'nope' },
    }),
  );
  const e = await t.throwsAsync(client.connect({ service: 'nope', labels: {} }), { instanceOf: AgentError });
  t.is(e.code, 'NOT_FOUND');
  t.is(e.message, "no network service 'nope' in the mesh; list them: nsm-agent services");
  t.is(e.hint, 'list them: nsm-agent services');
  t.deepEqual(e.details, { service: 'nope' });

  const r = await raw(path, 'POST', '/v1/connect', '{"service":"nope"}');
  t.is(r.status, 404);
  t.deepEqual(r.body, {
    error: {
      code: 'NOT_FOUND',
      message: "no network service 'nope' in the mesh",
      hint: 'list them: nsm-agent services',
      details: { service: 'nope' },
    },
  });
});

test('error codes map to HTTP statuses', async (t) => {
  const { control, path } = await serve(t);
  const cases = [
    ['PERMISSION_DENIED', 403],
    ['INVALID_ARGUMENT', 400],
    ['UNAVAILABLE', 503],
    ['FAILED_PRECONDITION', 409],
    ['DEADLINE_EXCEEDED', 504],
    ['EXEC_FAILED', 500],
  ] as const;
  for (const [code, status] of cases) {
    control.fail.set('status', new AgentError(code, `failed with ${code}`));
    const r = await raw(path, 'GET', '/v1/status');
    t.is(r.status, status, code);
    t.is((r.body as { error: { code: string } }).error.code, code);
  }
});

test('anything but an AgentError is a generic 500 INTERNAL; the real message goes to the log only', async (t) => {
  const { client, control, logs } = await serve(t);
  control.fail.set('services', new TypeError('cannot read properties of undefined (secret detail)'));
  const e = await t.throwsAsync(client.services(), { instanceOf: AgentError });
  t.is(e.code, 'INTERNAL');
  t.notRegex(e.message, /secret detail/);
  t.regex(e.hint ?? '', /log/);
  t.true(logs.some((l) => l.includes('secret detail')));
});

test('bad requests get a clear 400/404/405/413 and never reach the daemon', async (t) => {
  const { path, control } = await serve(t);
  const cases: readonly [string, string, string | Buffer | undefined, number, RegExp][] = [
    ['POST', '/v1/connect', '{"service": "db-net",', 400, /not JSON/],
    ['POST', '/v1/connect', '', 400, /no body/],
    ['POST', '/v1/connect', '[1]', 400, /JSON object/],
    ['POST', '/v1/connect', '{"labels": {}}', 400, /'service' is missing/],
    ['POST', '/v1/connect', '{"service": "DB_net"}', 400, /network service name/],
    ['POST', '/v1/connect', '{"service": "db", "lables": {}}', 400, /unknown field 'lables'/],
    [
      'POST',
      '/v1/connect',
      '{"service": "db", "labels": {"a": 1}}',
      400,
      /'labels' must map names to strings/,
    ],
    [
      'POST',
      '/v1/expose',
      '{"service": "db", "cidr": "10.0.0.0/99"}',
      400,
      /'cidr' must be an address range/,
    ],
    ['POST', '/v1/expose', '{"service": "db", "allow": "x"}', 400, /'allow' must be a list/],
    ['POST', '/v1/connect', Buffer.alloc(maxRequestBodyBytes + 1, 0x20), 413, /larger than 65536 bytes/],
    ['GET', '/v1/nope', undefined, 404, /no local API route GET \/v1\/nope/],
    ['GET', '/v1/connect', undefined, 405, /GET is not allowed on \/v1\/connect/],
  ];
  for (const [method, urlPath, body, status, message] of cases) {
    const r = await raw(path, method, urlPath, body);
    const error = (r.body as { error: { code: string; message: string; hint?: string } }).error;
    t.is(r.status, status, `${method} ${urlPath} ${String(body).slice(0, 40)}`);
    t.regex(error.message, message);
    t.true((error.hint ?? '') !== '', 'every refusal says what to do');
    if (status !== 404) t.is(error.code, 'INVALID_ARGUMENT');
  }
  t.deepEqual(control.calls, []);
});

test('the socket is root-only (0600) and its missing directory is created 0755', async (t) => {
  const { path, dir } = await serve(t);
  t.is(statSync(path).mode & 0o777, 0o600);
  t.is(statSync(join(dir, 'run')).mode & 0o777, 0o755);
});

test('close() removes the socket; a client then hears that the daemon is not running', async (t) => {
  const { api, client, path } = await serve(t);
  await api.close();
  t.false(existsSync(path));
  const e = await t.throwsAsync(client.status(), { instanceOf: AgentError });
  t.is(e.code, 'UNAVAILABLE');
});

test('a socket left by a dead daemon is replaced', async (t) => {
  const dir = tempDir(t);
  const path = join(dir, 'api.sock');
  // A process that binds the path and dies without unlinking it: what a SIGKILLed agent leaves.
  await new Promise<void>((resolve, reject) => {
    const child = spawn(process.execPath, [
      '-e',
      `require('net').createServer().listen(${JSON.stringify(path)}, () => process.kill(process.pid, 'SIGKILL'))`,
    ]);
    child.on('error', reject);
    child.on('exit', () => resolve());
  });
  t.true(statSync(path).isSocket());
  const stale = await t.throwsAsync(new LocalApiClient(`unix://${path}`).status(), {
    instanceOf: AgentError,
  });
  t.is(stale.code, 'UNAVAILABLE');
  t.true(stale.message.startsWith(`the nsm-agent daemon is not running (no socket at ${path})`));

  const { client } = await serve(t, path);
  t.is((await client.status()).agent.name, 'host-a');
});

test('a live socket is not stolen: a second server on the same path fails and the first keeps serving', async (t) => {
  const { path, client } = await serve(t);
  const e = await t.throwsAsync(
    startLocalApi({ url: `unix://${path}`, control: new FakeAgentControl(), log: silentLogger() }),
    { instanceOf: AgentError },
  );
  t.is(e.code, 'FAILED_PRECONDITION');
  t.regex(e.message, /another process is serving on unix:\/\//);
  t.regex(e.hint ?? '', /another nsm-agent running/);
  t.is((await client.status()).agent.name, 'host-a');
});

test('no daemon: UNAVAILABLE, "not running", and how to start it', async (t) => {
  const path = join(tempDir(t), 'api.sock');
  const e = await t.throwsAsync(new LocalApiClient(`unix://${path}`).status(), { instanceOf: AgentError });
  t.is(e.code, 'UNAVAILABLE');
  t.is(
    e.message,
    `the nsm-agent daemon is not running (no socket at ${path}); start it: systemctl start nsm-agent (or nsm-agent run)`,
  );
  t.is(e.hint, 'start it: systemctl start nsm-agent (or nsm-agent run)');
});

test('a URL that is not a unix socket is refused with the expected form', (t) => {
  for (const url of ['tcp://127.0.0.1:80', 'unix://relative.sock', '/run/nsm-agent/api.sock']) {
    const e = t.throws(() => new LocalApiClient(url), { instanceOf: AgentError });
    t.is(e.code, 'INVALID_ARGUMENT');
    t.regex(e.hint ?? '', /unix:\/\/\/absolute\/path\.sock/);
  }
});

test('the client going away (timeout or abort) aborts the signal the daemon was given', async (t) => {
  const { client, control } = await serve(t);
  control.hang.add('connect');
  const aborted = control.nextAbort();
  const e = await t.throwsAsync(client.connect({ service: 'db-net', labels: {} }, { timeoutMs: 200 }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'DEADLINE_EXCEEDED');
  t.true((await aborted).aborted);

  control.hang.add('services');
  const ac = new AbortController();
  const aborted2 = control.nextAbort();
  const call = client.services({ signal: ac.signal });
  setTimeout(() => ac.abort(), 100);
  t.is((await t.throwsAsync(call, { instanceOf: AgentError })).code, 'CANCELLED');
  t.true((await aborted2).aborted);
});

test('close() aborts requests in flight', async (t) => {
  const { api, client, control } = await serve(t);
  control.hang.add('expose');
  const aborted = control.nextAbort();
  const call = client.expose({ service: 'payments', labels: {} });
  while (control.calls.length === 0) await new Promise((r) => setTimeout(r, 10));
  await api.close();
  t.true((await aborted).aborted);
  await t.throwsAsync(call, { instanceOf: AgentError });
});

test('a user other than root is told the socket is root-only (nsm-agent status as nobody)', async (t) => {
  if (process.getuid?.() !== 0) {
    t.pass('needs root to run a child as another user');
    return;
  }
  const dir = tempDir(t);
  chmodSync(dir, 0o755); // the directory is open; the 0600 socket is what refuses
  const { path } = await serve(t, join(dir, 'api.sock'));
  const root = fileURLToPath(new URL('../../../', import.meta.url));
  const r = await new Promise<{ code: number | null; stderr: string }>((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', 'src/main.ts', 'status', '--api', `unix://${path}`],
      { cwd: root, uid: 65534, gid: 65534, env: { PATH: process.env.PATH ?? '' }, timeout: 30_000 },
    );
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
  t.is(r.code, 1, r.stderr);
  t.regex(r.stderr, /error: not allowed to open the agent's local API socket/);
  t.regex(r.stderr, /hint: run as root \(the local API socket is root-only\)/);
});
