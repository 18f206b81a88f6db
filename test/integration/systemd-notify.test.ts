// sd_notify as systemd sees it: a real AF_UNIX datagram receiver (python3, as systemd's notify
// socket is one) bound to a path or an abstract name gets exactly the datagram, sent by this process
// (SCM_CREDENTIALS pid, which systemd's NotifyAccess=main checks). The helper is the real native addon.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import { AgentError } from '../../src/errors/index.js';
import { notifySystemd, watchdogInterval } from '../../src/host/systemd-notify.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'nsm-notify-'));
const addon = join(dir, 'helper.node');

test.before(() => {
  // A private build of the one native helper, so a concurrent build of dist/native does not matter.
  execFileSync(process.execPath, ['packaging/build-native.mjs', addon], { cwd: root });
});
test.after.always(() => {
  rmSync(dir, { recursive: true, force: true });
});

const receiverPy = `
import base64, socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
s.settimeout(20)
print('ready', flush=True)
data, anc, _, _ = s.recvmsg(65536, socket.CMSG_SPACE(12))
pid = next(struct.unpack('iII', d)[0] for (l, t, d) in anc if t == socket.SCM_CREDENTIALS)
print(pid, base64.b64encode(data).decode(), flush=True)
`;

interface Receiver {
  /** What it got and the sender's pid. */
  readonly datagram: Promise<{ pid: number; text: string }>;
  /** Resolves once the receiver process has exited (after one datagram, or killed). */
  readonly exited: Promise<void>;
}

/** Starts a receiver on `address`; it takes one datagram and exits. */
async function receiver(address: string): Promise<Receiver> {
  const child = spawn('python3', ['-c', receiverPy, address], { stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  let stderr = '';
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()));
  const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
  const next = async (): Promise<string> => {
    const r = await lines.next();
    if (r.done === true) throw new Error(`the receiver exited: ${stderr}`);
    return r.value;
  };
  const ready = await next();
  if (ready !== 'ready') throw new Error(`unexpected receiver output ${ready}: ${stderr}`);
  const datagram = next().then((line) => {
    const [pid, b64] = line.split(' ');
    return { pid: Number(pid), text: Buffer.from(b64 ?? '', 'base64').toString('utf8') };
  });
  datagram.catch(() => undefined).finally(() => child.kill());
  return { datagram, exited };
}

test('READY=1 and STATUS reach a receiver bound to a socket path, exactly, from this process', async (t) => {
  const path = join(dir, 'notify.sock');
  const r = await receiver(path);
  const state = 'READY=1\nSTATUS=serving 3 connections · registry up';
  t.true(await notifySystemd(state, { NOTIFY_SOCKET: path }, { path: addon }));
  const got = await r.datagram;
  t.is(got.text, state);
  t.is(got.pid, process.pid);
});

test('an abstract NOTIFY_SOCKET (@name) gets the datagram too', async (t) => {
  const name = `@nsm-agent-test-${process.pid}-${Date.now()}`;
  const r = await receiver(name);
  t.true(await notifySystemd('STOPPING=1', { NOTIFY_SOCKET: name }, { path: addon }));
  t.is((await r.datagram).text, 'STOPPING=1');
});

test('no NOTIFY_SOCKET: false and nothing sent, not even the helper loaded', async (t) => {
  const missing = { path: join(dir, 'no-such-helper.node') };
  t.false(await notifySystemd('READY=1', {}, missing));
  t.false(await notifySystemd('READY=1', { NOTIFY_SOCKET: '' }, missing));
});

test('a dead socket path is a clear AgentError, not a crash', async (t) => {
  const gone = join(dir, 'gone.sock');
  const e = await t.throwsAsync(notifySystemd('READY=1', { NOTIFY_SOCKET: gone }, { path: addon }));
  t.true(AgentError.is(e, 'UNAVAILABLE'));
  t.regex(
    e.message,
    new RegExp(`cannot notify systemd at NOTIFY_SOCKET=${gone}: .*No such file or directory`),
  );
  t.regex(e.message, /nothing listens on that socket/);
  t.regex(e.message, /Type=notify/);

  // A socket file whose receiver has exited: connection refused, same advice.
  const stale = join(dir, 'stale.sock');
  const r = await receiver(stale);
  await notifySystemd('WATCHDOG=1', { NOTIFY_SOCKET: stale }, { path: addon });
  await r.datagram;
  await r.exited;
  const refused = await t.throwsAsync(notifySystemd('WATCHDOG=1', { NOTIFY_SOCKET: stale }, { path: addon }));
  t.true(AgentError.is(refused, 'UNAVAILABLE'));
  t.regex(refused.message, /Connection refused/);

  const dead = await t.throwsAsync(
    notifySystemd('READY=1', { NOTIFY_SOCKET: '@nsm-agent-nobody' }, { path: addon }),
  );
  t.true(AgentError.is(dead, 'UNAVAILABLE'));
});

test('NOTIFY_SOCKET that is not a path or @name, a too long path, an empty state', async (t) => {
  const relative = await t.throwsAsync(
    notifySystemd('READY=1', { NOTIFY_SOCKET: 'run/notify' }, { path: addon }),
  );
  t.true(AgentError.is(relative, 'FAILED_PRECONDITION'));
  const vsock = await t.throwsAsync(
    notifySystemd('READY=1', { NOTIFY_SOCKET: 'vsock:2:1234' }, { path: addon }),
  );
  t.regex(vsock.message, /AF_VSOCK .* not supported/);
  const long = await t.throwsAsync(
    notifySystemd('READY=1', { NOTIFY_SOCKET: `/${'x'.repeat(200)}` }, { path: addon }),
  );
  t.true(AgentError.is(long));
  t.regex(long.message, /too long/);
  const empty = await t.throwsAsync(notifySystemd('', { NOTIFY_SOCKET: '/run/x' }, { path: addon }));
  t.true(AgentError.is(empty, 'INVALID_ARGUMENT'));
});

test('watchdogInterval: half of WATCHDOG_USEC in ms, only when the watchdog is meant for us', (t) => {
  t.is(watchdogInterval({}), undefined);
  t.is(watchdogInterval({ WATCHDOG_USEC: '30000000' }), 15_000);
  t.is(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: String(process.pid) }), 15_000);
  t.is(watchdogInterval({ WATCHDOG_USEC: '30000000', WATCHDOG_PID: '1' }, 4242), undefined);
  t.is(watchdogInterval({ WATCHDOG_USEC: '0' }), undefined);
  t.is(watchdogInterval({ WATCHDOG_USEC: 'soon' }), undefined);
  t.is(watchdogInterval({ WATCHDOG_USEC: '1000' }), 1, 'never 0 ms');
});
