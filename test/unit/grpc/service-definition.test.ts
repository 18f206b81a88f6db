import test from 'ava';
import { create } from '@bufbuild/protobuf';
import {
  deserializerFor,
  methodPaths,
  serializerFor,
  serviceDefinition,
} from '../../../src/api/grpc/index.js';
import { NetworkService, NetworkServiceRequestSchema } from '../../../src/api/gen/networkservice_pb.js';
import { MonitorConnection } from '../../../src/api/gen/connection_pb.js';
import { NetworkServiceEndpointRegistry, NetworkServiceRegistry } from '../../../src/api/gen/registry_pb.js';
import { IPAM } from '../../../src/api/gen/ipam_pb.js';
import { Health } from '../../../src/api/gen/health_pb.js';

const services = [
  NetworkService,
  MonitorConnection,
  NetworkServiceRegistry,
  NetworkServiceEndpointRegistry,
  IPAM,
  Health,
];

test('method paths are exactly NSM’s wire paths (nsm-api §1.2) plus grpc.health.v1', (t) => {
  t.deepEqual(services.flatMap(methodPaths), [
    '/networkservice.NetworkService/Request',
    '/networkservice.NetworkService/Close',
    '/connection.MonitorConnection/MonitorConnections',
    '/registry.NetworkServiceRegistry/Register',
    '/registry.NetworkServiceRegistry/Find',
    '/registry.NetworkServiceRegistry/Unregister',
    '/registry.NetworkServiceEndpointRegistry/Register',
    '/registry.NetworkServiceEndpointRegistry/Find',
    '/registry.NetworkServiceEndpointRegistry/Unregister',
    '/ipam.IPAM/ManagePrefixes',
    '/grpc.health.v1.Health/Check',
    '/grpc.health.v1.Health/List',
    '/grpc.health.v1.Health/Watch',
  ]);
});

test('streaming flags match the protos', (t) => {
  const flags = Object.fromEntries(
    services.flatMap((s) =>
      Object.values(serviceDefinition(s)).map((m) => [m.path, [m.requestStream, m.responseStream]] as const),
    ),
  );
  t.deepEqual(flags, {
    '/networkservice.NetworkService/Request': [false, false],
    '/networkservice.NetworkService/Close': [false, false],
    '/connection.MonitorConnection/MonitorConnections': [false, true],
    '/registry.NetworkServiceRegistry/Register': [false, false],
    '/registry.NetworkServiceRegistry/Find': [false, true],
    '/registry.NetworkServiceRegistry/Unregister': [false, false],
    '/registry.NetworkServiceEndpointRegistry/Register': [false, false],
    '/registry.NetworkServiceEndpointRegistry/Find': [false, true],
    '/registry.NetworkServiceEndpointRegistry/Unregister': [false, false],
    '/ipam.IPAM/ManagePrefixes': [true, true],
    '/grpc.health.v1.Health/Check': [false, false],
    '/grpc.health.v1.Health/List': [false, false],
    '/grpc.health.v1.Health/Watch': [false, true],
  });
});

test('serializers round-trip both messages and plain init objects', (t) => {
  const serialize = serializerFor(NetworkServiceRequestSchema);
  const deserialize = deserializerFor(NetworkServiceRequestSchema);
  const init = { connection: { id: 'c1', networkService: 'db-net', labels: { app: 'db' } } };
  const fromInit = deserialize(serialize(init));
  t.deepEqual(fromInit, deserialize(serialize(create(NetworkServiceRequestSchema, init))));
  t.is(fromInit.connection?.networkService, 'db-net');
  t.deepEqual(fromInit.connection?.labels, { app: 'db' });
});
