// UserspaceWireGuard gives wireguard-go's UDP sockets big buffers after ensureDevice, through the
// UdpSocketBuffers port (here the fake; the real one is proven in test/integration/host).
import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import { FakeClock } from '../../../src/host/fake/clock.js';
import { FakeUdpSocketBuffers } from '../../../src/host/fake/fake-udp-socket-buffers.js';
import { RecordingRunner } from '../../../src/host/fake/recording-runner.js';
import { defaultUdpBufferBytes } from '../../../src/host/socket-buffers/index.js';
import { UserspaceWireGuard } from '../../../src/host/wireguard/index.js';
import { createLogger } from '../../../src/log/index.js';

const priv = '6MV8TtALvgNzd5sR+uLbfd5GwV9ukK25RrEh1J6vTlE=';
const pid = 4242;

function harness(o: { udpBufferBytes?: number; schedBatch?: boolean } = {}): {
  wg: UserspaceWireGuard;
  runner: RecordingRunner;
  buffers: FakeUdpSocketBuffers;
  logs: () => { level: string; msg: string; err?: string }[];
} {
  const raw: string[] = [];
  const buffers = new FakeUdpSocketBuffers();
  buffers.addProcess(pid);
  const runner = new RecordingRunner();
  const wg = new UserspaceWireGuard({
    runner,
    socketDir: '/nonexistent-nsm-test/wg',
    logDir: '/nonexistent-nsm-test/log',
    clock: new FakeClock(),
    uapi: (_path, req) =>
      Promise.resolve(req.startsWith('get') ? 'listen_port=51820\nerrno=0\n\n' : 'errno=0\n\n'),
    processes: () => Promise.resolve([{ pid, device: 'wg0' }]),
    socketBuffers: buffers,
    log: createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } }),
    ...o,
  });
  return {
    wg,
    runner,
    buffers,
    logs: () => raw.map((l) => JSON.parse(l) as { level: string; msg: string; err?: string }),
  };
}

test('ensureDevice gives every UDP socket of the device 4 MiB, once; a re-apply changes nothing', async (t) => {
  const h = harness();
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.deepEqual(h.buffers.calls, [{ pid, bytes: defaultUdpBufferBytes }]);
  t.deepEqual(
    h.buffers.sockets.get(pid)?.map((s) => s.rcvbuf),
    [2 * defaultUdpBufferBytes, 2 * defaultUdpBufferBytes],
  );
  t.is(h.logs().filter((l) => l.msg.includes('bigger buffers')).length, 1);
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.is(h.buffers.calls.length, 2, 'checked again (wireguard-go may have rebound)');
  t.is(h.logs().filter((l) => l.msg.includes('bigger buffers')).length, 1, 'but nothing changed');
  const now = await h.wg.udpSocketBuffers('wg0');
  t.deepEqual(
    now?.map((s) => [s.family, s.rcvbuf, s.changed]),
    [
      [4, 2 * defaultUdpBufferBytes, false],
      [6, 2 * defaultUdpBufferBytes, false],
    ],
  );
});

test('a host that refuses (no ptrace access) keeps the device working and warns once with the fix', async (t) => {
  const h = harness();
  h.buffers.refuse = new AgentError('PERMISSION_DENIED', 'pidfd_getfd: Operation not permitted', {
    hint: 'kernel.yama.ptrace_scope below 3',
  });
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  const about = h.logs().filter((l) => l.msg.includes('default UDP buffers'));
  t.deepEqual(
    about.map((l) => l.level),
    ['warn', 'debug'],
  );
  t.regex(about[0]?.err ?? '', /Operation not permitted.*ptrace_scope/);
});

test('udpBufferBytes 0 leaves wireguard-go its own buffers', async (t) => {
  const h = harness({ udpBufferBytes: 0 });
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.deepEqual(h.buffers.calls, []);
  t.deepEqual(
    h.buffers.sockets.get(pid)?.map((s) => s.rcvbuf),
    [212_992, 212_992],
  );
});

test('ensureDevice puts every wireguard-go thread on SCHED_BATCH, again on each call; schedBatch false does not', async (t) => {
  const h = harness();
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.deepEqual(
    h.runner.lines.filter((l) => l.startsWith('chrt')),
    [`chrt -b -a -p 0 ${pid}`, `chrt -b -a -p 0 ${pid}`],
  );
  const off = harness({ schedBatch: false });
  await off.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.false(off.runner.lines.some((l) => l.startsWith('chrt')));
});

test('without chrt the device still comes up, with one warning', async (t) => {
  const h = harness();
  h.runner.on('chrt*', { code: 127, stderr: 'chrt: not found\n' });
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  await h.wg.ensureDevice('wg0', { privateKey: priv, listenPort: 51820 });
  t.deepEqual(
    h
      .logs()
      .filter((l) => l.msg.includes('scheduling policy'))
      .map((l) => l.level),
    ['warn', 'debug'],
  );
});
