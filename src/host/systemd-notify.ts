import { AgentError } from '../errors/index.js';
import { loadNativeHelper } from './socket-buffers/native-addon.js';
import type { NativeAddonOptions, NativeHelper } from './socket-buffers/native-addon.js';

/**
 * systemd readiness (sd_notify(3)): with Type=notify the unit is "active" only once the service
 * sends READY=1 to $NOTIFY_SOCKET, and with WatchdogSec= it must send WATCHDOG=1 in time or be
 * restarted. Node has no AF_UNIX datagram sockets, so the datagram goes through the native helper.
 */
export interface SystemdNotifyOptions extends NativeAddonOptions {
  /** An already loaded helper (the daemon loads it once); default: loaded on first use. */
  readonly helper?: Pick<NativeHelper, 'notify'>;
}

const serviceHint =
  'the agent keeps running, but systemd will not see it ready: check that the unit has Type=notify (NotifyAccess=main) and runs the agent itself, or unset NOTIFY_SOCKET when not started by systemd';

/**
 * Sends `state` (newline-separated assignments: `READY=1\nSTATUS=…`, `STOPPING=1`, `WATCHDOG=1`,
 * `RELOADING=1`) as one datagram to $NOTIFY_SOCKET. Without NOTIFY_SOCKET it does nothing and
 * returns false (not run by systemd); true once sent. Failures are AgentErrors with a hint; callers
 * log them and carry on, since readiness must never bring the daemon down.
 */
export async function notifySystemd(
  state: string,
  env: NodeJS.ProcessEnv = process.env,
  o: SystemdNotifyOptions = {},
): Promise<boolean> {
  const socket = env['NOTIFY_SOCKET'];
  if (socket === undefined || socket === '') return false;
  if (state === '' || state.includes('\0')) {
    throw new AgentError('INVALID_ARGUMENT', 'a systemd notification must be non-empty text without NUL', {
      hint: 'send assignments such as READY=1 or STATUS=…',
    });
  }
  if (!socket.startsWith('/') && !socket.startsWith('@')) {
    throw new AgentError(
      'FAILED_PRECONDITION',
      `NOTIFY_SOCKET=${socket} is not an AF_UNIX socket path or @abstract name`,
      {
        hint: `${socket.startsWith('vsock:') ? 'AF_VSOCK notification (systemd in a VM host) is not supported; ' : ''}${serviceHint}`,
      },
    );
  }
  const helper = o.helper ?? (await loadNativeHelper(o));
  try {
    helper.notify(socket, state);
  } catch (e: unknown) {
    throw notifyError(e, socket);
  }
  return true;
}

/**
 * How often to send WATCHDOG=1: half of WATCHDOG_USEC (systemd's WatchdogSec=), in ms, when the
 * watchdog is on for this process (WATCHDOG_PID, when set, must be `pid`); else undefined.
 */
export function watchdogInterval(
  env: NodeJS.ProcessEnv = process.env,
  pid = process.pid,
): number | undefined {
  const usecText = env['WATCHDOG_USEC'];
  if (usecText === undefined || !/^\d+$/.test(usecText)) return undefined;
  const usec = Number(usecText);
  if (!Number.isSafeInteger(usec) || usec <= 0) return undefined;
  const pidText = env['WATCHDOG_PID'];
  if (pidText !== undefined && pidText !== '' && Number(pidText) !== pid) return undefined;
  return Math.max(1, Math.floor(usec / 2000));
}

function notifyError(e: unknown, socket: string): AgentError {
  const err = e as { code?: string; message?: string };
  const what = `cannot notify systemd at NOTIFY_SOCKET=${socket}: ${err.message ?? String(e)}`;
  const details = { socket, errno: err.code ?? '' };
  switch (err.code) {
    case 'ENOENT':
    case 'ECONNREFUSED':
    case 'ENOTDIR':
      return new AgentError('UNAVAILABLE', what, {
        cause: e,
        details,
        hint: `nothing listens on that socket (systemd gone, or a stale NOTIFY_SOCKET inherited from another service); ${serviceHint}`,
      });
    case 'EACCES':
    case 'EPERM':
      return new AgentError('PERMISSION_DENIED', what, {
        cause: e,
        details,
        hint: `the agent's user may not write to that socket; ${serviceHint}`,
      });
    case 'EAGAIN':
    case 'ENOBUFS':
      return new AgentError('UNAVAILABLE', what, {
        cause: e,
        details,
        hint: 'the receiver is not reading (systemd busy); the next notification tries again',
      });
    default:
      return new AgentError('EXEC_FAILED', what, { cause: e, details, hint: serviceHint });
  }
}
