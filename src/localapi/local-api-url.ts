import { isAbsolute } from 'node:path';
import { AgentError } from '../errors/index.js';

/** Where the agent's local API listens unless the config or the command line says otherwise. */
export const defaultLocalApiUrl = 'unix:///run/nsm-agent/api.sock';

/**
 * The socket path of a local API URL. Only unix sockets: the API can change the data plane, so
 * it is reachable only by local users the socket's file mode admits (root), never over TCP.
 */
export function localApiSocketPath(url: string): string {
  const path = url.startsWith('unix://') ? url.slice('unix://'.length) : undefined;
  if (path === undefined || !isAbsolute(path) || path.includes('\0')) {
    throw new AgentError('INVALID_ARGUMENT', `'${url}' is not a local API address`, {
      hint: 'the local API is a unix socket: give unix:///absolute/path.sock (default unix:///run/nsm-agent/api.sock)',
    });
  }
  return path;
}
