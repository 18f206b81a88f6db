import test from 'ava';
import {
  NetworkServiceEndpointSchema,
  NetworkServiceSchema,
  create,
  toTimestamp,
} from '../../../src/api/index.js';
import { matchNetworkService, matchNetworkServiceEndpoint } from '../../../src/registry/index.js';

const nse = create(NetworkServiceEndpointSchema, {
  name: 'db-1',
  networkServiceNames: ['db-net', 'backup'],
  networkServiceLabels: { 'db-net': { labels: { zone: 'eu', tier: 'gold' } } },
  url: 'tcp://10.0.0.1:5001',
  expirationTime: toTimestamp(1_767_225_600_500),
});
const tpl = (init: Parameters<typeof create<typeof NetworkServiceEndpointSchema>>[1]) =>
  create(NetworkServiceEndpointSchema, init);

test('NSE template rules', (t) => {
  t.true(matchNetworkServiceEndpoint(undefined, nse));
  t.true(matchNetworkServiceEndpoint(tpl({}), nse));
  t.true(matchNetworkServiceEndpoint(tpl({ name: 'db-1' }), nse));
  t.false(matchNetworkServiceEndpoint(tpl({ name: 'db-10' }), nse));
  t.true(matchNetworkServiceEndpoint(tpl({ networkServiceNames: ['backup'] }), nse));
  t.false(matchNetworkServiceEndpoint(tpl({ networkServiceNames: ['backup', 'web'] }), nse));
  t.true(
    matchNetworkServiceEndpoint(
      tpl({ networkServiceLabels: { 'db-net': { labels: { tier: 'gold' } } } }),
      nse,
    ),
  );
  t.false(
    matchNetworkServiceEndpoint(
      tpl({ networkServiceLabels: { 'db-net': { labels: { tier: 'bronze' } } } }),
      nse,
    ),
  );
  t.false(
    matchNetworkServiceEndpoint(tpl({ networkServiceLabels: { backup: { labels: {} } } }), nse),
    'no labels entry',
  );
  t.true(matchNetworkServiceEndpoint(tpl({ url: ':5001' }), nse));
  t.false(matchNetworkServiceEndpoint(tpl({ url: 'unix' }), nse));
  t.true(
    matchNetworkServiceEndpoint(tpl({ expirationTime: toTimestamp(1_767_225_600_000) }), nse),
    'seconds only',
  );
  t.false(matchNetworkServiceEndpoint(tpl({ expirationTime: toTimestamp(1_767_225_601_000) }), nse));
});

test('NS template rules', (t) => {
  const ns = create(NetworkServiceSchema, {
    name: 'db-net',
    payload: 'IP',
    matches: [{ sourceSelector: { a: 'b' } }, { fallthrough: true }],
  });
  t.true(matchNetworkService(undefined, ns));
  t.true(matchNetworkService(create(NetworkServiceSchema, { payload: 'IP' }), ns));
  t.false(matchNetworkService(create(NetworkServiceSchema, { payload: 'ETHERNET' }), ns));
  t.false(matchNetworkService(create(NetworkServiceSchema, { name: 'db' }), ns));
  t.true(
    matchNetworkService(
      create(NetworkServiceSchema, { matches: [{ sourceSelector: { a: 'b' } }, { fallthrough: true }] }),
      ns,
    ),
  );
  t.false(
    matchNetworkService(
      create(NetworkServiceSchema, { matches: [{ fallthrough: true }, { sourceSelector: { a: 'b' } }] }),
      ns,
    ),
  );
});
