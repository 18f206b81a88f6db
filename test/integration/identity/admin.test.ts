// The token and host administration API, as `nsm-agent token …` / `hosts …` will call it.
import 'reflect-metadata';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import test from 'ava';
import { clientCredentials, dial, insecure, startServer } from '../../../src/api/grpc/index.js';
import { EnrolmentAdminService } from '../../../src/api/index.js';
import { AgentError } from '../../../src/errors/index.js';
import {
  adminSpiffeIds,
  enrolmentAdminService,
  enrollHost,
  issueToolIdentity,
  parseToken,
  renewHost,
} from '../../../src/identity/index.js';
import { silentLogger } from '../../../src/log/index.js';
import { FACTS, TD, controlServer, tempDir } from './control-server.js';

test('over a local unix socket: create, list and revoke tokens; list and revoke hosts', async (t) => {
  const cs = await controlServer(t);
  const sock = join(await tempDir(t), 'admin.sock');
  const admin = await startServer({
    listen: [{ url: `unix://${sock}`, credentials: insecure() }],
    services: [
      enrolmentAdminService({
        tokens: cs.tokens,
        hosts: cs.hosts,
        serverUrl: cs.url,
        caPin: cs.pki.ca.pin,
        authorize: () => true,
      }),
    ],
    log: silentLogger(),
    socketMode: 0o600,
  });
  t.teardown(() => admin.close({ graceMs: 100 }));
  const conn = dial(`unix://${sock}`, { credentials: insecure() });
  t.teardown(() => conn.close());
  const api = conn.client(EnrolmentAdminService);

  const created = await api.createToken({ ttlSeconds: 600, uses: 2, labels: { site: 'lab' } });
  const parsed = parseToken(created.token);
  t.is(parsed.serverUrl, cs.url);
  t.deepEqual(parsed.caPin, cs.pki.ca.pin);
  t.is(created.info?.usesLeft, 2);
  t.is(created.info?.state, 'active');

  const stateDir = await tempDir(t);
  const host = await enrollHost({ token: created.token, stateDir, hostFacts: FACTS });
  const tokens = await api.listTokens({});
  t.is(tokens.tokens[0]?.usesLeft, 1);
  t.is((await api.revokeToken({ id: parsed.id })).state, 'revoked');

  const hosts = await api.listHosts({});
  t.is(hosts.hosts.length, 1);
  t.is(hosts.hosts[0]?.facts?.hostname, 'db-1');
  t.deepEqual(hosts.hosts[0]?.labels, { site: 'lab' });
  const revoked = await api.revokeHost({ host: 'db-1' });
  t.is(revoked.hostId, host.hostId);
  t.truthy(revoked.revokedAt);
  await t.throwsAsync(renewHost({ stateDir }), { message: /revoked/ });
  const missing = await t.throwsAsync(api.revokeHost({ host: 'nope' }), { instanceOf: AgentError });
  t.is(missing.code, 'NOT_FOUND');
});

test('on the TLS listener only admin SPIFFE IDs may administer', async (t) => {
  const cs = await controlServer(t, {
    extraServices: (pki, stores) => [
      enrolmentAdminService({
        ...stores,
        serverUrl: 'tcp://control.example:5002',
        caPin: pki.ca.pin,
        authorize: adminSpiffeIds(TD),
      }),
    ],
  });
  const expected = `spiffe://${TD}/server`;
  const anonymous = dial(cs.url, {
    credentials: clientCredentials({ bundlePem: cs.pki.ca.bundlePem, expectedServerId: expected }),
  });
  t.teardown(() => anonymous.close());
  const e = await t.throwsAsync(anonymous.client(EnrolmentAdminService).createToken({}), {
    instanceOf: AgentError,
  });
  t.is(e.code, 'PERMISSION_DENIED');
  t.regex(e.message, /may not administer.*admin identity/);

  const as = async (spiffeId: string): Promise<ReturnType<typeof dial>> => {
    const files = await issueToolIdentity({ ca: cs.pki.ca, spiffeId, outDir: await tempDir(t) });
    const conn = dial(cs.url, {
      credentials: clientCredentials({
        bundlePem: await readFile(files.bundlePath, 'utf8'),
        certChainPem: await readFile(files.certPath, 'utf8'),
        keyPem: await readFile(files.keyPath, 'utf8'),
        expectedServerId: expected,
      }),
    });
    t.teardown(() => conn.close());
    return conn;
  };
  const ops = await as(`spiffe://${TD}/admin/ops`);
  const res = await ops.client(EnrolmentAdminService).createToken({});
  t.is(parseToken(res.token).serverUrl, 'tcp://control.example:5002');
  const tool = await as(`spiffe://${TD}/tool/grpcurl`);
  await t.throwsAsync(tool.client(EnrolmentAdminService).listHosts({}), {
    message: /tool\/grpcurl may not administer/,
  });
});
