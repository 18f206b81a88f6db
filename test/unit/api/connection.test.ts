import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import {
  cloneConnection,
  ConnectionSchema,
  create,
  currentSegment,
  fromBinary,
  newClientConnection,
  nextSegment,
  prevSegment,
  toBinary,
} from '../../../src/api/index.js';
import { toUint8Array, uintField } from '../../helpers/protowire.js';

const fixedRandom = { uuid: (): string => '00000000-0000-4000-8000-000000000001' };

test('newClientConnection builds the path nsmgr updatepath expects', (t) => {
  const c = newClientConnection({
    id: 'nsc-0',
    networkService: 'my-service@my.domain',
    labels: { app: 'web' },
    clientName: 'host-a',
  });
  t.is(c.id, 'nsc-0');
  t.is(c.networkService, 'my-service@my.domain');
  t.deepEqual(c.labels, { app: 'web' });
  t.is(c.path?.index, 0);
  t.is(c.path?.pathSegments.length, 1);
  t.is(c.path?.pathSegments[0]?.name, 'host-a');
  t.is(c.path?.pathSegments[0]?.id, c.id);
  t.is(c.mechanism, undefined);
});

test('newClientConnection makes an id from the random port and uses it in segment 0', (t) => {
  const c = newClientConnection({ networkService: 'ns', clientName: 'host-a', random: fixedRandom });
  t.is(c.id, '00000000-0000-4000-8000-000000000001');
  t.is(c.path?.pathSegments[0]?.id, c.id);
  t.deepEqual(c.labels, {});
});

test('newClientConnection with the system random gives distinct ids', (t) => {
  const a = newClientConnection({ networkService: 'ns', clientName: 'c' });
  const b = newClientConnection({ networkService: 'ns', clientName: 'c' });
  t.regex(a.id, /^[0-9a-f-]{36}$/);
  t.not(a.id, b.id);
});

test('newClientConnection copies labels instead of holding the caller object', (t) => {
  const labels: Record<string, string> = { app: 'web' };
  const c = newClientConnection({ networkService: 'ns', clientName: 'c', labels, random: fixedRandom });
  labels['app'] = 'changed';
  t.is(c.labels['app'], 'web');
});

test('newClientConnection rejects empty names and ids', (t) => {
  t.throws(() => newClientConnection({ networkService: '', clientName: 'c' }), {
    instanceOf: AgentError,
    message: /network service name/,
  });
  t.throws(() => newClientConnection({ networkService: 'ns', clientName: '' }), {
    instanceOf: AgentError,
    message: /client name/,
  });
  t.throws(() => newClientConnection({ id: '', networkService: 'ns', clientName: 'c' }), {
    instanceOf: AgentError,
    message: /id must not be empty/,
  });
});

test('segment accessors follow path.index', (t) => {
  const c = create(ConnectionSchema, {
    path: {
      index: 1,
      pathSegments: [
        { name: 'nsc', id: 'a' },
        { name: 'nsmgr', id: 'b' },
        { name: 'forwarder', id: 'c' },
      ],
    },
  });
  t.is(prevSegment(c)?.name, 'nsc');
  t.is(currentSegment(c)?.name, 'nsmgr');
  t.is(nextSegment(c)?.name, 'forwarder');
});

test('segment accessors return undefined at the ends and without a path', (t) => {
  const first = newClientConnection({ id: 'x', networkService: 'ns', clientName: 'c' });
  t.is(prevSegment(first), undefined);
  t.is(currentSegment(first)?.id, 'x');
  t.is(nextSegment(first), undefined);
  const none = create(ConnectionSchema);
  t.is(prevSegment(none), undefined);
  t.is(currentSegment(none), undefined);
  t.is(nextSegment(none), undefined);
  // An index past the end (a malformed peer message) is not an exception either.
  const beyond = create(ConnectionSchema, { path: { index: 5, pathSegments: [{ name: 'a' }] } });
  t.is(currentSegment(beyond), undefined);
});

test('cloneConnection is deep: changing the copy leaves the original alone', (t) => {
  const orig = newClientConnection({ id: 'x', networkService: 'ns', clientName: 'c', labels: { a: '1' } });
  const copy = cloneConnection(orig);
  t.deepEqual(copy, orig);
  copy.labels['a'] = '2';
  const seg = copy.path?.pathSegments[0];
  if (seg) seg.id = 'y';
  t.is(orig.labels['a'], '1');
  t.is(orig.path?.pathSegments[0]?.id, 'x');
});

test('cloneConnection keeps unknown fields, so a relayed connection loses nothing', (t) => {
  const withUnknown = fromBinary(ConnectionSchema, toUint8Array(uintField(99, 42)));
  const copy = cloneConnection(withUnknown);
  t.deepEqual(toBinary(ConnectionSchema, copy), toBinary(ConnectionSchema, withUnknown));
  t.is(copy.$unknown?.length, 1);
});
