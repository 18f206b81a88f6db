// `nsm-agent run` hands its parsed options to handlers.agent.run (a fake here) and reports readiness.
import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import type { AgentReadyInfo, AgentRunOptions, Handlers } from '../../../src/localapi/index.js';
import { cliWith } from './agent-cli-harness.js';

const readyInfo: AgentReadyInfo = {
  spiffeId: 'spiffe://mesh.example/agent/h-1',
  publicUrl: 'tcp://10.0.0.1:5001',
  api: 'unix:///tmp/a/api.sock',
  nsm: 'unix:///tmp/a/nsm.sock',
  metrics: '127.0.0.1:9464',
};

/** An agent that reports ready, then serves until the stop signal. */
function fakeAgent(seen: { options?: AgentRunOptions; signal?: AbortSignal }): Partial<Handlers> {
  return {
    agent: {
      enroll: () => Promise.reject(new Error('not used')),
      run: (options, signal, ready) => {
        seen.options = options;
        seen.signal = signal;
        ready(readyInfo);
        return new Promise<void>((resolve) => {
          if (signal.aborted) resolve();
          else signal.addEventListener('abort', () => resolve(), { once: true });
        });
      },
    },
  };
}

test('run: every flag reaches agent.run; one readiness line on stderr; exit 0 on a clean stop', async (t) => {
  const seen: { options?: AgentRunOptions; signal?: AbortSignal } = {};
  const stop = new AbortController();
  const running = cliWith(
    [
      '--config',
      '/etc/a.json',
      '--log-level',
      'debug',
      'run',
      '--state-dir',
      '/var/lib/a',
      '--run-dir',
      '/run/a',
      '--listen-nsm',
      'unix:///run/a/nsm.sock',
      '--listen-remote',
      'tcp://:5101',
      '--listen-api',
      'unix:///run/a/api.sock',
      '--listen-metrics',
      '127.0.0.1:9565',
      '--public-url',
      'tcp://10.0.0.1:5101',
      '--wireguard-port',
      '51821',
      '--wireguard-interface',
      'nsm-wg1',
    ],
    { handlers: fakeAgent(seen), stopSignal: stop.signal },
  );
  while (seen.signal === undefined) await new Promise((r) => setTimeout(r, 5));
  t.false(seen.signal.aborted);
  stop.abort(new Error('received SIGTERM'));
  const r = await running;
  t.is(r.code, 0);
  t.deepEqual(seen.options, {
    config: '/etc/a.json',
    logLevel: 'debug',
    stateDir: '/var/lib/a',
    runDir: '/run/a',
    listenNsm: 'unix:///run/a/nsm.sock',
    listenRemote: 'tcp://:5101',
    listenApi: 'unix:///run/a/api.sock',
    listenMetrics: '127.0.0.1:9565',
    publicUrl: 'tcp://10.0.0.1:5101',
    wireguardPort: 51821,
    wireguardInterface: 'nsm-wg1',
  });
  t.is(r.stdout, '');
  t.is(
    r.stderr,
    'nsm-agent ready as spiffe://mesh.example/agent/h-1: remote agents dial tcp://10.0.0.1:5001; ' +
      'local API unix:///tmp/a/api.sock; NSM API unix:///tmp/a/nsm.sock; metrics 127.0.0.1:9464\n',
  );
});

test('run without flags: only the config path (from $NSM_AGENT_CONFIG) is passed', async (t) => {
  const seen: { options?: AgentRunOptions; signal?: AbortSignal } = {};
  const stop = new AbortController();
  stop.abort();
  const r = await cliWith(['run'], {
    handlers: fakeAgent(seen),
    stopSignal: stop.signal,
    env: { NSM_AGENT_CONFIG: '/srv/agent.json' },
  });
  t.is(r.code, 0);
  t.deepEqual(seen.options, { config: '/srv/agent.json' });
});

test('run: a bad --wireguard-port is a usage error (exit 2) and the agent is not started', async (t) => {
  const seen: { options?: AgentRunOptions } = {};
  for (const port of ['0', '65536', 'wg']) {
    const r = await cliWith(['run', '--wireguard-port', port], { handlers: fakeAgent(seen) });
    t.is(r.code, 2, port);
    t.regex(r.stderr, /expected a UDP port 1-65535/);
  }
  t.is(seen.options, undefined);
});

test('run: the agent failing to start prints its error and hint, exit 1', async (t) => {
  const r = await cliWith(['run'], {
    handlers: {
      agent: {
        enroll: () => Promise.reject(new Error('not used')),
        run: () =>
          Promise.reject(
            new AgentError('FAILED_PRECONDITION', 'this host is not enrolled', {
              hint: 'enrol it first: nsm-agent enroll --token-file <file>',
            }),
          ),
      },
    },
  });
  t.is(r.code, 1);
  t.is(
    r.stderr,
    'error: this host is not enrolled\nhint: enrol it first: nsm-agent enroll --token-file <file>\n',
  );
});

test('run: --config and --log-level may also follow the subcommand, as in `nsm-agent run --config F`', async (t) => {
  const seen: { options?: AgentRunOptions; signal?: AbortSignal } = {};
  const stop = new AbortController();
  stop.abort();
  const r = await cliWith(['run', '--config', '/x.json', '--log-level', 'warn'], {
    handlers: fakeAgent(seen),
    stopSignal: stop.signal,
  });
  t.is(r.code, 0);
  t.deepEqual(seen.options, { config: '/x.json', logLevel: 'warn' });
});
