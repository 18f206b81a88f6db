import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import type { AgentConfigFile } from '../../../src/config/index.js';
import { applyDefaults, loadConfig } from '../../../src/config/index.js';

// Validation goes through loadConfig (src/config/validate.ts), so these load real files.
async function load(t: { teardown: (f: () => void) => void }, content: unknown): Promise<AgentConfigFile> {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-schema-'));
  t.teardown(() => {
    rmSync(dir, { recursive: true, force: true });
  });
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify(content));
  return (await loadConfig(file, { hostname: () => 'h' })).file;
}

test('the effective config is itself a valid config file (config show --json round-trips)', async (t) => {
  const effective = applyDefaults(
    { exposes: [{ service: 'web' }], connects: [{ service: 'db', labels: { a: 'b' } }] },
    { hostname: 'host-1.example.com' },
  );
  t.deepEqual(await load(t, effective), JSON.parse(JSON.stringify(effective)) as AgentConfigFile);
});

test('values the schema accepts', async (t) => {
  await t.notThrowsAsync(
    load(t, {
      mesh: { server: 'tcp://[fd00::1]:5002', trustDomain: 'mesh_1.example' },
      agent: { listen: { nsm: 'tcp://127.0.0.1:5000', remote: 'tcp://0.0.0.0:5001', metrics: ':9464' } },
      connects: [{ service: 'db@cluster.example' }, { service: 'db', netns: 'blue' }],
      exposes: [{ service: 'v6', cidr: 'fd00:80::/64' }],
      update: { pin: 'v1.2.3-rc.1' },
    }),
  );
});

const rejected: readonly [string, unknown][] = [
  ['mesh.server without port', { mesh: { server: 'tcp://mesh.example' } }],
  ['trust domain with scheme', { mesh: { trustDomain: 'spiffe://mesh.example' } }],
  ['api on tcp', { agent: { listen: { api: 'tcp://:7000' } } }],
  ['relative unix socket', { agent: { listen: { nsm: 'unix://run/nsm.sock' } } }],
  ['port 65536 in a URL', { agent: { listen: { remote: 'tcp://:65536' } } }],
  ['relative stateDir', { agent: { stateDir: 'var/lib' } }],
  ['16-character interface name', { wireguard: { interface: 'a234567890123456' } }],
  ['uppercase service', { exposes: [{ service: 'Web' }] }],
  ['exposed service with @domain', { exposes: [{ service: 'web@other' }] }],
  ['CIDR without prefix', { exposes: [{ service: 'web', cidr: '10.0.0.0' }] }],
  ['IPv4 prefix /33', { exposes: [{ service: 'web', cidr: '10.0.0.0/33' }] }],
  ['allow without spiffe://', { exposes: [{ service: 'web', allow: ['mesh.example/*'] }] }],
  ['non-integer port', { wireguard: { port: 5.5 } }],
];
for (const [what, content] of rejected) {
  test(`the schema rejects: ${what}`, async (t) => {
    await t.throwsAsync(load(t, content), { message: /is invalid/ });
  });
}
