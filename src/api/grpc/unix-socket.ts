import { createConnection } from 'node:net';
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';
import { AgentError, describe } from '../../errors/index.js';

/** What is at a socket path right now. */
export type SocketProbe = 'absent' | 'live' | 'stale';

/** Connect attempts to a live socket answer at once; a slow answer still means someone is there. */
const PROBE_TIMEOUT_MS = 1_000;

/**
 * Connects to the path to learn whether a server is behind it. Only a refused connection counts
 * as stale: a timeout or a full backlog means a process holds the socket, and taking it over
 * would leave that daemon running but unreachable.
 */
export function probeUnixSocket(path: string): Promise<SocketProbe> {
  return new Promise((resolve, reject) => {
    const socket = createConnection({ path });
    const done = (result: SocketProbe): void => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done('live'), PROBE_TIMEOUT_MS);
    socket.once('connect', () => done('live'));
    socket.once('error', (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') done('absent');
      else if (e.code === 'ECONNREFUSED') done('stale');
      else if (e.code === 'EAGAIN') done('live');
      else {
        clearTimeout(timer);
        socket.destroy();
        reject(
          new AgentError('UNAVAILABLE', `cannot probe unix socket ${path}: ${describe(e)}`, { cause: e }),
        );
      }
    });
  });
}

/**
 * Makes `path` ready for bind: creates its directory (0750: the socket's group needs to traverse
 * it), and removes a socket file left behind by a process that died; refuses when a server still
 * answers on it or when the path is not a socket at all.
 */
export async function prepareUnixSocket(path: string): Promise<void> {
  await mkdir(dirname(path), { recursive: true, mode: 0o750 });
  let isSocket: boolean;
  try {
    isSocket = (await lstat(path)).isSocket();
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    throw new AgentError('UNAVAILABLE', `cannot inspect ${path}: ${describe(e)}`, { cause: e });
  }
  if (!isSocket) {
    throw new AgentError('FAILED_PRECONDITION', `${path} exists and is not a socket; refusing to remove it`, {
      hint: 'move the file away or listen on another path',
    });
  }
  const probe = await probeUnixSocket(path);
  if (probe === 'live') {
    throw new AgentError('FAILED_PRECONDITION', `another process is serving on unix://${path}`, {
      hint: 'is another nsm-agent running? stop it, or listen on another path',
    });
  }
  if (probe === 'stale') {
    try {
      await unlink(path);
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') {
        throw new AgentError('UNAVAILABLE', `cannot remove stale socket ${path}: ${describe(e)}`, {
          cause: e,
        });
      }
    }
  }
}

/**
 * Sets the socket's mode after bind. Local peers are trusted by file mode (owner and group may
 * connect), so this is the access control of an insecure unix listener.
 */
export async function restrictUnixSocket(path: string, mode: number): Promise<void> {
  try {
    await chmod(path, mode);
  } catch (e: unknown) {
    throw new AgentError('UNAVAILABLE', `cannot set mode ${mode.toString(8)} on ${path}: ${describe(e)}`, {
      cause: e,
    });
  }
}
