import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { insecure, probeUnixSocket } from '../../../src/api/grpc/index.js';
import { NetworkService } from '../../../src/api/gen/networkservice_pb.js';
import { AgentError } from '../../../src/errors/index.js';
import { connect, echoNetworkService, serve, tempDir } from './fixtures.js';

/** Leaves a socket file with nobody behind it, the way a daemon killed with SIGKILL does. */
async function staleSocket(path: string): Promise<void> {
  const child = spawn(
    process.execPath,
    ['-e', `require('node:net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
    { stdio: ['ignore', 'pipe', 'inherit'] },
  );
  await once(child.stdout, 'data');
  child.kill('SIGKILL');
  await once(child, 'exit');
}

test('a stale socket file left by a dead process is replaced', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'nsm.sock');
  await staleSocket(path);
  t.true((await stat(path)).isSocket());
  t.is(await probeUnixSocket(path), 'stale');

  const server = await serve(t, {
    listen: [{ url: `unix://${path}`, credentials: insecure() }],
    services: [echoNetworkService()],
  });
  const conn = await connect(t, server.address, { credentials: insecure() })
    .client(NetworkService)
    .request({});
  t.is(conn.id, 'conn-1');
});

test('a live socket is not stolen: a second server fails with a clear error', async (t) => {
  const dir = await tempDir(t);
  const url = `unix://${join(dir, 'nsm.sock')}`;
  const listen1 = [{ url, credentials: insecure() }];
  await serve(t, { listen: listen1, services: [echoNetworkService()] });

  const e = await t.throwsAsync(serve(t, { listen: listen1, services: [echoNetworkService()] }), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'FAILED_PRECONDITION');
  t.regex(e.message, /another process is serving on unix:\/\/.*nsm\.sock.*is another nsm-agent running/);

  // The first server still answers on its socket.
  const conn = await connect(t, url, { credentials: insecure() }).client(NetworkService).request({});
  t.is(conn.id, 'conn-1');
});

test('the parent directory is created, the socket gets mode 0660, and close removes it', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'run', 'nsm-agent', 'api.sock');
  const server = await serve(t, {
    listen: [{ url: `unix://${path}`, credentials: insecure() }],
    services: [echoNetworkService()],
  });
  t.is((await stat(path)).mode & 0o777, 0o660);
  // Created 0750: others get nothing whatever the umask.
  t.is((await stat(join(dir, 'run', 'nsm-agent'))).mode & 0o007, 0);
  await server.close();
  t.is(await probeUnixSocket(path), 'absent');
});

test('a path that is not a socket is never removed', async (t) => {
  const dir = await tempDir(t);
  const path = join(dir, 'nsm.sock');
  await writeFile(path, 'precious');
  const e = await t.throwsAsync(
    serve(t, {
      listen: [{ url: `unix://${path}`, credentials: insecure() }],
      services: [echoNetworkService()],
    }),
    { instanceOf: AgentError },
  );
  t.regex(e.message, /exists and is not a socket/);
  t.true((await stat(path)).isFile());
});
