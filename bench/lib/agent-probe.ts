// An ICMP echo prober that lives in one network namespace for the whole benchmark, so a setup
// measurement never pays for starting `ping`: the bench writes `start <tag> <ip>` on its stdin
// when it calls connect, the prober sends an echo request to <ip> every few ms (send errors such as
// "network unreachable" before the route exists are counted and retried) and prints
// `ok <tag> <sent>` on the first echo reply from <ip>, or `timeout <tag> <sent>` after the bound.
// The bench takes the time when the line arrives (pipe latency is well under a millisecond).
// Python (raw ICMP socket, root) because Node has no raw sockets; it ends when its stdin closes.
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';

const script = String.raw`
import os, select, socket, struct, sys, time
interval = float(sys.argv[1]) / 1000.0
bound = float(sys.argv[2]) / 1000.0
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
s.setblocking(False)
def csum(b):
    if len(b) % 2: b += b'\0'
    t = sum(struct.unpack('!%dH' % (len(b) // 2), b))
    t = (t >> 16) + (t & 0xffff); t += t >> 16
    return ~t & 0xffff
probes = {}
nextid = (os.getpid() * 97) & 0xffff
stdin = sys.stdin.fileno()
buf = b''
def out(line):
    sys.stdout.write(line + '\n'); sys.stdout.flush()
print('ready', flush=True)
while True:
    r, _, _ = select.select([stdin, s], [], [], interval / 2 if probes else None)
    if stdin in r:
        data = os.read(stdin, 65536)
        if not data: break
        buf += data
        while b'\n' in buf:
            line, buf = buf.split(b'\n', 1)
            p = line.decode().split()
            if len(p) == 3 and p[0] == 'start':
                nextid = (nextid + 1) & 0xffff or 1
                probes[nextid] = {'tag': p[1], 'ip': p[2], 'seq': 0, 'sent': 0, 'errors': 0, 'next': 0.0, 'end': time.monotonic() + bound}
    if s in r:
        while True:
            try: pkt, addr = s.recvfrom(4096)
            except (BlockingIOError, InterruptedError): break
            ihl = (pkt[0] & 0x0f) * 4
            if len(pkt) < ihl + 8: continue
            typ, _, _, ident, _ = struct.unpack('!BBHHH', pkt[ihl:ihl + 8])
            pr = probes.get(ident)
            if typ == 0 and pr is not None and addr[0] == pr['ip']:
                out('ok %s %d %d' % (pr['tag'], pr['sent'], pr['errors']))
                del probes[ident]
    now = time.monotonic()
    for ident, pr in list(probes.items()):
        if now >= pr['end']:
            out('timeout %s %d %d' % (pr['tag'], pr['sent'], pr['errors']))
            del probes[ident]
        elif now >= pr['next']:
            pr['seq'] = (pr['seq'] + 1) & 0xffff
            h = struct.pack('!BBHHH', 8, 0, 0, ident, pr['seq']) + b'nsm-bench'
            h = struct.pack('!BBHHH', 8, 0, csum(h), ident, pr['seq']) + b'nsm-bench'
            try:
                s.sendto(h, (pr['ip'], 0)); pr['sent'] += 1
            except OSError:
                pr['errors'] += 1
            pr['next'] = now + interval
`;

export interface ProbeResult {
  readonly tag: string;
  readonly ok: boolean;
  /** performance.now() when the prober reported the first reply (or the timeout). */
  readonly at: number;
  /** Echo requests sent, and sends that failed (no route yet…). */
  readonly sent: number;
  readonly sendErrors: number;
}

export interface IcmpProber {
  readonly pid: number;
  /** Starts probing `ip` now; resolves at the first reply from it, or ok: false after the bound. */
  probe(tag: string, ip: string): Promise<ProbeResult>;
  /** Closes stdin (the prober exits), SIGKILL after 2 s; resolves when it exited. */
  stop(): Promise<void>;
}

/** Starts the prober in `netns` and waits (bounded, 10 s) until it is ready. */
export async function startIcmpProber(
  netns: string,
  o: { intervalMs?: number; timeoutMs?: number } = {},
): Promise<IcmpProber> {
  const intervalMs = o.intervalMs ?? 5;
  const timeoutMs = o.timeoutMs ?? 15_000;
  const child: ChildProcess = spawn(
    'ip',
    ['netns', 'exec', netns, 'python3', '-u', '-c', script, String(intervalMs), String(timeoutMs)],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  if (child.pid === undefined) {
    await new Promise((r) => child.once('error', r));
    throw new Error(`cannot start the ICMP prober in ${netns} (are ip and python3 installed?)`);
  }
  const pid = child.pid;
  // A prober that died leaves a closed pipe: writing to it must not crash the bench (the probe
  // then resolves as failed when the exit is seen).
  child.stdin?.on('error', () => undefined);
  let stderr = '';
  child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const waiting = new Map<string, (r: ProbeResult) => void>();
  let ready: () => void = () => undefined;
  const isReady = new Promise<void>((r) => (ready = r));
  const lines = createInterface({ input: child.stdout! });
  lines.on('line', (line) => {
    const at = performance.now();
    const [kind, tag, sent, errors] = line.split(' ');
    if (kind === 'ready') {
      ready();
      return;
    }
    const done = tag === undefined ? undefined : waiting.get(tag);
    if (done === undefined || tag === undefined) return;
    waiting.delete(tag);
    done({ tag, ok: kind === 'ok', at, sent: Number(sent), sendErrors: Number(errors) });
  });
  void exited.then(() => {
    for (const [tag, done] of waiting)
      done({ tag, ok: false, at: performance.now(), sent: 0, sendErrors: 0 });
    waiting.clear();
  });
  const stop = async (): Promise<void> => {
    child.stdin?.end();
    const t = setTimeout(() => {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // gone
      }
    }, 2_000);
    await exited;
    clearTimeout(t);
  };
  let bound: NodeJS.Timeout | undefined;
  const late = new Promise<'late'>((r) => (bound = setTimeout(() => r('late'), 10_000)));
  const first = await Promise.race([isReady, exited, late]);
  clearTimeout(bound);
  if (first === 'late') {
    await stop();
    throw new Error(`the ICMP prober in ${netns} did not start in 10 s: ${stderr.trim()}`);
  }
  if (child.exitCode !== null || child.signalCode !== null)
    throw new Error(`the ICMP prober in ${netns} exited: ${stderr.trim()}`);
  return {
    pid,
    probe(tag, ip) {
      if (waiting.has(tag)) throw new Error(`probe ${tag} is running already`);
      return new Promise((resolve) => {
        waiting.set(tag, resolve);
        child.stdin?.write(`start ${tag} ${ip}\n`);
      });
    },
    stop,
  };
}
