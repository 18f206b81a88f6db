import { createConnection } from 'node:net';
import { AgentError } from '../../errors/index.js';

/** Sends one UAPI request over a unix socket and returns the whole reply. A port for tests. */
export type UapiTransport = (socketPath: string, request: string, timeoutMs?: number) => Promise<string>;

const maxReply = 4 * 1024 * 1024;

/**
 * The real transport: one connection per request (wireguard-go serves one request per
 * connection), read until the reply's terminating empty line after `errno=`, bounded in time and size.
 */
export const unixUapiTransport: UapiTransport = (socketPath, request, timeoutMs = 5_000) =>
  new Promise((resolve, reject) => {
    const sock = createConnection({ path: socketPath });
    let reply = '';
    let done = false;
    const finish = (e?: AgentError): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      sock.destroy();
      if (e) reject(e);
      else resolve(reply);
    };
    const timer = setTimeout(() => {
      finish(
        new AgentError(
          'DEADLINE_EXCEEDED',
          `no WireGuard UAPI reply from ${socketPath} within ${timeoutMs} ms`,
          {
            hint: 'wireguard-go may be hung: check its log, or delete the device to restart it',
          },
        ),
      );
    }, timeoutMs);
    timer.unref();
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(request));
    sock.on('data', (chunk: string) => {
      reply += chunk;
      if (reply.length > maxReply) {
        finish(
          new AgentError(
            'RESOURCE_EXHAUSTED',
            `WireGuard UAPI reply from ${socketPath} is over ${maxReply} bytes`,
            { hint: 'too many peers for one get; this is a bug' },
          ),
        );
      } else if (/(?:^|\n)errno=-?\d+\n\n$/.test(reply)) {
        finish();
      }
    });
    sock.on('end', () => finish());
    sock.on('error', (e: NodeJS.ErrnoException) => {
      const absent = e.code === 'ENOENT' || e.code === 'ECONNREFUSED';
      finish(
        new AgentError(
          absent ? 'NOT_FOUND' : 'UNAVAILABLE',
          `cannot talk to WireGuard UAPI socket ${socketPath}: ${e.message}`,
          {
            cause: e,
            hint: absent
              ? 'the wireguard-go process for this device is not running'
              : 'check that the agent runs as root',
            details: { socket: socketPath, errno: e.code ?? '' },
          },
        ),
      );
    });
  });
