// PackedMessage (src/api/packed-message.ts): what the daemon keeps per connection in wire form must
// come back exactly as it went in, as a fresh copy every time.
import test from 'ava';
import {
  ConnectionSchema,
  create,
  equals,
  fromBinary,
  NetworkServiceRequestSchema,
  State,
  packConnection,
  packEncoded,
  packMessage,
  toBinary,
  unpackConnection,
  unpackMessage,
} from '../../../src/api/index.js';
import { protoInt64 } from '@bufbuild/protobuf';

function connection() {
  return create(ConnectionSchema, {
    id: 'c-1',
    networkService: 'web',
    labels: { app: 'shop', 'zone·é': 'ü漢' },
    mechanism: {
      cls: 'LOCAL',
      type: 'KERNEL',
      parameters: { name: 'nsm0', inodeURL: 'file:///run/netns/x' },
    },
    context: {
      ipContext: {
        srcIpAddrs: ['10.0.0.2/32'],
        dstIpAddrs: ['10.0.0.1/32'],
        srcRoutes: [{ prefix: '10.0.0.1/32' }],
      },
      dnsContext: { configs: [{ searchDomains: ['nsm'], dnsServerIps: ['10.0.0.53'] }] },
      MTU: 1420,
    },
    path: {
      index: 1,
      pathSegments: [
        {
          name: 'nsc',
          id: 'c-0',
          token: 'eyJ\u00ff\u0000x',
          expires: { seconds: protoInt64.parse(1_800_000_000), nanos: 5 },
        },
        { name: 'nsmgr', id: 'c-1', token: 't2', metrics: { rtt: '3' } },
      ],
    },
    state: State.UP,
  });
}

test('a packed connection unpacks to an equal message, one string character per encoded byte', (t) => {
  const conn = connection();
  const packed = packMessage(ConnectionSchema, conn);
  t.is(packed.length, toBinary(ConnectionSchema, conn).length);
  const back = unpackMessage(ConnectionSchema, packed);
  t.true(equals(ConnectionSchema, back, conn));
  t.deepEqual(back, conn);
});

test('every unpack is a fresh copy: changing one does not change the next', (t) => {
  const packed = packMessage(
    NetworkServiceRequestSchema,
    create(NetworkServiceRequestSchema, { connection: connection() }),
  );
  const first = unpackMessage(NetworkServiceRequestSchema, packed);
  first.connection!.path!.pathSegments[0]!.token = 'changed';
  first.connection!.labels['app'] = 'changed';
  const second = unpackMessage(NetworkServiceRequestSchema, packed);
  t.is(second.connection?.path?.pathSegments[0]?.token, 'eyJ\u00ff\u0000x');
  t.is(second.connection?.labels['app'], 'shop');
  t.not(first.connection, second.connection);
});

test('bytes read from a file pack to the same form as the message they encode', (t) => {
  const bytes = toBinary(ConnectionSchema, connection());
  const packed = packEncoded(ConnectionSchema, Buffer.from(bytes));
  t.is(packed, packMessage(ConnectionSchema, fromBinary(ConnectionSchema, bytes)));
});

test('a packed connection keeps its tokens apart and puts them back; the original is not touched', (t) => {
  const conn = connection();
  const before = toBinary(ConnectionSchema, conn);
  const packed = packConnection(conn);
  t.deepEqual(packed.slice(1), ['eyJ\u00ff\u0000x', 't2'], 'the tokens, by segment');
  t.true(packed[0].length < before.length - 8, 'the encoding holds no token');
  t.deepEqual(toBinary(ConnectionSchema, conn), before, 'the caller still has its tokens');
  const back = unpackConnection(packed);
  t.true(equals(ConnectionSchema, back, conn));
  back.path!.pathSegments[1]!.token = 'changed';
  t.is(unpackConnection(packed).path?.pathSegments[1]?.token, 't2', 'each unpack is a fresh copy');
  const bare = create(ConnectionSchema, { id: 'x', networkService: 'web' });
  t.true(equals(ConnectionSchema, unpackConnection(packConnection(bare)), bare), 'no path: nothing apart');
});
