import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import {
  formatRegistryPath,
  parseRegistryPath,
  updatePathIds,
  updateRegistryPath,
} from '../../../src/registry/index.js';

test('format writes what Go’s encoding/json writes', (t) => {
  t.is(formatRegistryPath({ index: 0, segments: [] }), '{"Index":0,"PathSegments":null}');
  t.is(
    formatRegistryPath({ index: 1, segments: [{ token: 'a' }, { token: 'b' }] }),
    '{"Index":1,"PathSegments":[{"token":"a"},{"token":"b"}]}',
  );
});

test('parse reads Go’s JSON: null path, case-insensitive names, unknown fields, nil segments', (t) => {
  t.deepEqual(parseRegistryPath('{"Index":0,"PathSegments":null}'), { index: 0, segments: [] });
  t.deepEqual(parseRegistryPath('null'), { index: 0, segments: [] });
  t.deepEqual(parseRegistryPath('{}'), { index: 0, segments: [] });
  t.deepEqual(parseRegistryPath('{"INDEX":1,"pathsegments":[{"Token":"x"},null,{}],"extra":true}'), {
    index: 1,
    segments: [{ token: 'x' }, { token: '' }, { token: '' }],
  });
});

test('parse refuses what would break the path, with INVALID_ARGUMENT', (t) => {
  for (const bad of [
    '',
    '{',
    '"x"',
    '{"Index":1.5}',
    '{"Index":4294967296}',
    '{"PathSegments":{}}',
    '{"PathSegments":[1]}',
  ]) {
    const e = t.throws(() => parseRegistryPath(bad), { instanceOf: AgentError }, bad);
    t.is(e.code, 'INVALID_ARGUMENT');
  }
  const many = JSON.stringify({ Index: 0, PathSegments: Array.from({ length: 65 }, () => ({ token: '' })) });
  t.throws(() => parseRegistryPath(many), { message: /more than 64 segments/ });
});

test('updatePath follows sdk updatepath: first call, relay, refresh, bad index', (t) => {
  const first = updateRegistryPath({ index: 0, segments: [] }, 'peer', 'own');
  t.deepEqual(first, { path: { index: 1, segments: [{ token: 'peer' }, { token: 'own' }] }, callerIndex: 0 });

  const relay = updateRegistryPath(
    { index: 1, segments: [{ token: 'nse' }, { token: 'nsmgr-own' }] },
    'nsmgr-call',
    'reg',
  );
  t.deepEqual(relay, {
    path: { index: 2, segments: [{ token: 'nse' }, { token: 'nsmgr-call' }, { token: 'reg' }] },
    callerIndex: 1,
  });

  const refresh = updateRegistryPath(
    { index: 0, segments: [{ token: 'old-peer' }, { token: 'old-own' }] },
    'p2',
    'o2',
  );
  t.deepEqual(refresh, { path: { index: 1, segments: [{ token: 'p2' }, { token: 'o2' }] }, callerIndex: 0 });

  t.throws(() => updateRegistryPath({ index: 2, segments: [{ token: '' }, { token: '' }] }, 'p', 'o'), {
    message: /Index\+1 \(3\) exceeds the number of segments \(2\)/,
  });
});

test('updatePathIds sets in place or appends (never pads), as upstream', (t) => {
  t.deepEqual(updatePathIds([], 0, 'a'), ['a']);
  t.deepEqual(updatePathIds(['a'], 1, 'b'), ['a', 'b']);
  t.deepEqual(updatePathIds(['a', 'x'], 1, 'b'), ['a', 'b']);
  t.deepEqual(updatePathIds([], 2, 'c'), ['c'], 'appended at the end, not at index 2');
});
