import test from 'ava';
import { AgentError } from '../../../../src/errors/index.js';
import { serveFind } from '../../../../src/registry/proxy/serve-find.js';
import type { FindChange } from '../../../../src/registry/proxy/serve-find.js';

function feed(): {
  push: (c: FindChange<string>) => void;
  subscribe: (p: (c: FindChange<string>) => void) => () => void;
} {
  let listener: ((c: FindChange<string>) => void) | undefined;
  return {
    push: (c) => listener?.(c),
    subscribe: (p) => {
      listener = p;
      return () => (listener = undefined);
    },
  };
}

test('watch=false sends the snapshot and ends; watch=true sends the snapshot, then changes until cancelled', async (t) => {
  const f = feed();
  const sent: string[] = [];
  const send = (c: FindChange<string>): Promise<void> => {
    sent.push(`${c.deleted ? '-' : '+'}${c.record}`);
    return Promise.resolve();
  };
  await serveFind({
    watch: false,
    snapshot: () => ['a'],
    subscribe: f.subscribe,
    send,
    signal: new AbortController().signal,
    maxBacklog: 10,
  });
  t.deepEqual(sent, ['+a']);

  sent.length = 0;
  const cancel = new AbortController();
  const done = serveFind({
    watch: true,
    snapshot: () => ['a', 'b'],
    subscribe: f.subscribe,
    send,
    signal: cancel.signal,
    maxBacklog: 10,
  });
  await new Promise((r) => setImmediate(r));
  f.push({ record: 'c', deleted: false });
  f.push({ record: 'a', deleted: true });
  await new Promise((r) => setImmediate(r));
  cancel.abort();
  await done;
  t.deepEqual(sent, ['+a', '+b', '+c', '-a']);
  f.push({ record: 'late', deleted: false });
  t.is(sent.length, 4, 'unsubscribed once the watch ended');
});

test('a local watcher too far behind is ended with RESOURCE_EXHAUSTED instead of buffering without bound', async (t) => {
  const f = feed();
  let release: (() => void) | undefined;
  const stuck = new Promise<void>((r) => (release = r));
  let first = true;
  const send = async (): Promise<void> => {
    if (first) {
      first = false;
      await stuck; // the local caller stops reading
    }
  };
  const done = serveFind({
    watch: true,
    snapshot: () => ['a'],
    subscribe: f.subscribe,
    send,
    signal: new AbortController().signal,
    maxBacklog: 3,
  });
  for (let i = 0; i < 5; i++) f.push({ record: `r${i}`, deleted: false });
  release?.();
  const err = await t.throwsAsync(done);
  t.true(AgentError.is(err, 'RESOURCE_EXHAUSTED'));
});
