// The proxy's upstream client against a real registry over mTLS: how many tokens it signs.
import test from 'ava';
import { NetworkServiceEndpointSchema, create } from '../../../../src/api/index.js';
import { clientCredentials } from '../../../../src/api/grpc/index.js';
import { createTokenSigner } from '../../../../src/api/token/index.js';
import type { ClientToken, TokenSigner } from '../../../../src/api/token/index.js';
import { FakeClock } from '../../../../src/host/fake/index.js';
import { systemClock } from '../../../../src/host/index.js';
import { UpstreamRegistry } from '../../../../src/registry/proxy/upstream-registry.js';
import { SERVER_ID, mesh } from '../fixtures.js';
import { Upstream } from './proxy-fixtures.js';

test('upstream calls share one token while more than half of its life is left, then sign a new one', async (t) => {
  const upstream = new Upstream(t);
  await upstream.start();
  const m = await mesh();
  // Upstream checks token times against the real clock; the fake one only decides reuse here.
  const real = createTokenSigner({
    spiffeId: m.a.spiffeId,
    certificatePem: m.a.certPem,
    privateKeyPem: m.a.keyPem,
    clock: systemClock,
    maxLifetimeMs: 60_000,
  });
  const minted: ClientToken[] = [];
  const signer: TokenSigner = {
    spiffeId: real.spiffeId,
    mint: (peer, options) => {
      const token = real.mint(peer, options);
      minted.push(token);
      return token;
    },
  };
  const clock = new FakeClock(Date.now());
  const client = (reuseTokens: boolean): UpstreamRegistry => {
    const c = new UpstreamRegistry({
      url: upstream.url,
      credentials: clientCredentials({
        bundlePem: m.ca.certPem,
        certChainPem: m.a.chainPem,
        keyPem: m.a.keyPem,
        expectedServerId: SERVER_ID,
      }),
      signer,
      spiffeId: SERVER_ID,
      callTimeoutMs: 2_000,
      clock,
      reuseTokens,
    });
    t.teardown(() => c.close());
    return c;
  };
  const register = (c: UpstreamRegistry, name: string) =>
    c.registerNse(
      create(NetworkServiceEndpointSchema, {
        name,
        networkServiceNames: ['db'],
        url: 'tcp://192.0.2.10:5002',
      }),
    );

  const reusing = client(true);
  for (const name of ['a', 'b', 'c', 'd']) await register(reusing, name);
  t.is(minted.length, 1, 'four Registers, one signature');
  await clock.advance(29_000);
  const answer = await register(reusing, 'a');
  t.is(minted.length, 1, 'still more than half of the 60 s left');
  t.truthy(answer.expirationTime, 'upstream accepted the reused token');
  await clock.advance(2_000);
  await register(reusing, 'b');
  t.is(minted.length, 2, 'past half of its life: a new token');
  t.not(minted[1]?.token, minted[0]?.token);

  const fresh = client(false);
  for (const name of ['a', 'b', 'c']) await register(fresh, name);
  t.is(minted.length, 5, 'reuseTokens: false signs one token per call');
});
