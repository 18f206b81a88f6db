import test from 'ava';
import type { AgentConfig, AgentConfigFile, JsonSchema } from '../../../src/config/index.js';
import { applyDefaults, configSchema } from '../../../src/config/index.js';

/** Every optional field made required, recursively: a full example must then name every field of the type. */
type Full<T> = T extends readonly (infer U)[]
  ? readonly Full<U>[]
  : T extends object
    ? { readonly [K in keyof T]-?: Full<T[K]> }
    : T;

// If a field is added to AgentConfigFile and not here, this stops compiling; the tests below then
// make sure the schema has exactly the same fields, so type and schema cannot drift apart.
const fullFile: Full<AgentConfigFile> = {
  $schema: './config.schema.json',
  mesh: { server: 'tcp://mesh.example:5002', trustDomain: 'mesh.example' },
  agent: {
    name: 'host-1',
    listen: {
      nsm: 'unix:///run/nsm-agent/nsm.sock',
      remote: 'tcp://:5001',
      api: 'unix:///run/nsm-agent/api.sock',
      metrics: '127.0.0.1:9464',
    },
    stateDir: '/var/lib/nsm-agent',
    runDir: '/run/nsm-agent',
    liveness: { intervalMs: 500, misses: 4 },
  },
  wireguard: { port: 51820, interface: 'nsm-wg0', backend: 'kernel' },
  connects: [{ service: 'db-net', netns: '/var/run/netns/blue', labels: { app: 'billing' } }],
  exposes: [
    {
      service: 'payments',
      cidr: '10.80.0.0/16',
      labels: { tier: 'gold' },
      allow: ['spiffe://mesh.example/*'],
    },
  ],
  update: { channel: 'beta', pin: '1.4.2' },
  log: { level: 'warn' },
};

function schemaKeys(schema: JsonSchema, at = ''): string[] {
  if (schema.type === 'array' && schema.items) return schemaKeys(schema.items, `${at}[]`);
  if (schema.type !== 'object' || !schema.properties) return [at];
  return Object.entries(schema.properties).flatMap(([k, v]) => schemaKeys(v, at === '' ? k : `${at}.${k}`));
}

function valueKeys(value: unknown, at = ''): string[] {
  if (Array.isArray(value)) return value.flatMap((v: unknown) => valueKeys(v, `${at}[]`));
  // Label maps are open-ended: their own keys are data, not fields.
  if (typeof value === 'object' && value !== null && !at.endsWith('labels')) {
    return Object.entries(value).flatMap(([k, v]) => valueKeys(v, at === '' ? k : `${at}.${k}`));
  }
  return [at];
}

test('the schema has exactly the fields of the AgentConfigFile type', (t) => {
  t.deepEqual([...new Set(valueKeys(fullFile))].sort(), schemaKeys(configSchema).sort());
});

test('every object in the schema is closed, except label maps whose values must be strings', (t) => {
  const open: string[] = [];
  const walk = (s: JsonSchema, at: string): void => {
    if (s.type === 'object' && s.additionalProperties !== false) {
      const labelMap = at.endsWith('labels') && typeof s.additionalProperties === 'object';
      if (!labelMap) open.push(at);
    }
    for (const [k, v] of Object.entries(s.properties ?? {})) walk(v, `${at}.${k}`);
    if (s.items) walk(s.items, `${at}[]`);
  };
  walk(configSchema, '$');
  t.deepEqual(open, []);
});

test('the schema documents the same defaults that applyDefaults applies', (t) => {
  const defaults: AgentConfig = applyDefaults({}, { hostname: 'h' });
  const props = configSchema.properties ?? {};
  const wg = props.wireguard?.properties ?? {};
  t.is(wg.port?.default, defaults.wireguard.port);
  t.is(wg.interface?.default, defaults.wireguard.interface);
  t.is(wg.backend?.default, defaults.wireguard.backend);
  const listen = props.agent?.properties?.listen?.properties ?? {};
  t.is(listen.nsm?.default, defaults.agent.listen.nsm);
  t.is(listen.api?.default, defaults.agent.listen.api);
  t.is(listen.remote?.default, defaults.agent.listen.remote);
  t.is(listen.metrics?.default, defaults.agent.listen.metrics);
  t.is(props.exposes?.items?.properties?.cidr?.default, '169.254.0.0/16');
  t.is(props.update?.properties?.channel?.default, defaults.update.channel);
  t.is(props.log?.properties?.level?.default, defaults.log.level);
});

test('the schema declares JSON Schema draft 2020-12 (the dialect src/config/validate.ts implements a subset of)', (t) => {
  t.is(configSchema.$schema, 'https://json-schema.org/draft/2020-12/schema');
});
