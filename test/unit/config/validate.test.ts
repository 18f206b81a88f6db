import test from 'ava';
import { AgentError } from '../../../src/errors/index.js';
import type { JsonSchema } from '../../../src/config/index.js';
import { configSchema, schemaProblems, schemaViolations } from '../../../src/config/index.js';

// What Ajv 8.20 (draft 2020-12, allErrors, strict: conf's settings) reported for each text, recorded
// before conf + Ajv were dropped: the validator must say the same things, at the same places, in
// the same order, because config-problems.ts builds the messages users read from exactly these.
const ajvReported: readonly (readonly [
  string,
  readonly (readonly [readonly (string | number)[], string])[],
])[] = [
  ['[]', [[[], 'must be object']]],
  ['null', [[[], 'must be object']]],
  [
    '{"wireguard":{"port":"51820","interface":"","backend":5}}',
    [
      [['wireguard', 'port'], 'must be integer'],
      [['wireguard', 'interface'], 'must NOT have fewer than 1 characters'],
      [['wireguard', 'interface'], 'must match pattern "^[A-Za-z0-9_.-]+$"'],
      [['wireguard', 'backend'], 'must be string'],
      [['wireguard', 'backend'], 'must be equal to one of the allowed values'],
    ],
  ],
  [
    '{"wireguard":{"port":0.5}}',
    [
      [['wireguard', 'port'], 'must be integer'],
      [['wireguard', 'port'], 'must be >= 1'],
    ],
  ],
  ['{"wireguard":{"port":1e999}}', [[['wireguard', 'port'], 'must be integer']]],
  [
    '{"agnet":{},"mesh":{"trustdomain":"x","server":"http://x"},"port":1}',
    [
      [[], 'must NOT have additional properties'],
      [[], 'must NOT have additional properties'],
      [['mesh'], 'must NOT have additional properties'],
      [
        ['mesh', 'server'],
        'must match pattern "^tcp://(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})$"',
      ],
    ],
  ],
  [
    '{"agent":{"stateDir":"/","liveness":{"intervalMs":-1,"misses":61},"listen":{"api":"tcp://:1"}}}',
    [
      [['agent', 'listen', 'api'], 'must match pattern "^unix://(?:/[^/\\s]+)+$"'],
      [['agent', 'stateDir'], 'must NOT have fewer than 2 characters'],
      [['agent', 'liveness', 'intervalMs'], 'must be >= 0'],
      [['agent', 'liveness', 'misses'], 'must be <= 60'],
    ],
  ],
  [
    '{"connects":[{"netns":"blue","labels":{"bad key":1,"ok":"v"}},null]}',
    [
      [['connects', 0], "must have required property 'service'"],
      [['connects', 0, 'labels'], 'must match pattern "^[A-Za-z0-9][A-Za-z0-9_./-]*$"'],
      [['connects', 0, 'labels'], 'property name must be valid'],
      [['connects', 0, 'labels', 'bad key'], 'must be string'],
      [['connects', 1], 'must be object'],
    ],
  ],
  [
    '{"exposes":[{"service":"Web","cidr":"10.0.0.0/33","allow":["mesh/*",7]}],"update":{"channel":"nightly","pin":"x"},"log":[]}',
    [
      [['exposes', 0, 'service'], 'must match pattern "^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$"'],
      [
        ['exposes', 0, 'cidr'],
        'must match pattern "^(?:(?:(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])\\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])/(?:3[0-2]|[12]?[0-9])|[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9]))$"',
      ],
      [['exposes', 0, 'allow', 0], 'must match pattern "^spiffe://(?:\\*|[a-z0-9._-]+)(?:/\\S*)?$"'],
      [['exposes', 0, 'allow', 1], 'must be string'],
      [['update', 'channel'], 'must be equal to one of the allowed values'],
      [
        ['update', 'pin'],
        'must match pattern "^v?(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?$"',
      ],
      [['log'], 'must be object'],
    ],
  ],
  [
    '{"wireguard":{"interface":"😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀😀"}}',
    [
      [['wireguard', 'interface'], 'must NOT have more than 15 characters'],
      [['wireguard', 'interface'], 'must match pattern "^[A-Za-z0-9_.-]+$"'],
    ],
  ],
];

const violations = (data: unknown): [readonly (string | number)[], string][] =>
  schemaViolations(configSchema, data).map((v) => [v.path, v.message]);

for (const [text, expected] of ajvReported) {
  test(`reports what Ajv reported for ${text.length > 60 ? `${text.slice(0, 57)}...` : text}`, (t) => {
    t.deepEqual(violations(JSON.parse(text)), expected);
  });
}

test('reports what Ajv reported for a label key and value over their maximum lengths', (t) => {
  const key = 'k'.repeat(254);
  const doc = { connects: [{ service: 'a', labels: { [key]: 'v'.repeat(257) } }] };
  t.deepEqual(violations(doc), [
    [['connects', 0, 'labels'], 'must NOT have more than 253 characters'],
    [['connects', 0, 'labels'], 'property name must be valid'],
    [['connects', 0, 'labels', key], 'must NOT have more than 256 characters'],
  ]);
});

test('a file using every field is valid', (t) => {
  t.deepEqual(
    violations({
      $schema: './config.schema.json',
      mesh: { server: 'tcp://[fd00::1]:5002', trustDomain: 'mesh.example' },
      agent: {
        name: 'host-1',
        listen: {
          nsm: 'tcp://127.0.0.1:5000',
          remote: 'tcp://:5001',
          api: 'unix:///run/a/api.sock',
          metrics: ':9464',
        },
        stateDir: '/var/lib/nsm-agent',
        runDir: '/run/nsm-agent',
        liveness: { intervalMs: 0, misses: 60 },
      },
      wireguard: { port: 65535, interface: 'a23456789012345', backend: 'userspace' },
      connects: [
        { service: 'db@cluster.example', netns: '/var/run/netns/blue', labels: { 'app.io/x': 'y' } },
      ],
      exposes: [{ service: 'v6', cidr: 'fd00:80::/64', labels: {}, allow: ['spiffe://*/agent/*'] }],
      update: { channel: 'beta', pin: 'v1.2.3-rc.1' },
      log: { level: 'debug' },
    }),
    [],
  );
});

test('configSchema uses only keywords the validator checks', (t) => {
  t.deepEqual(schemaProblems(configSchema), []);
});

test('a keyword the validator does not know is reported, and validating with it throws', (t) => {
  const schema = {
    type: 'object',
    properties: {
      url: { type: 'string', format: 'uri' },
      list: { type: 'array', items: { type: 'string', uniqueItems: true } },
      map: { type: 'object', additionalProperties: { type: 'string', const: 'x' } },
      odd: { type: 'float', pattern: '(' },
    },
  } as unknown as JsonSchema;
  t.deepEqual(schemaProblems(schema), [
    'url: unknown keyword "format"',
    'list[]: unknown keyword "uniqueItems"',
    'map{*}: unknown keyword "const"',
    'odd: unknown type "float"',
    'odd: pattern "(" is not a valid regular expression',
  ]);
  const e = t.throws(() => schemaViolations(schema, { url: 'x' }));
  t.true(AgentError.is(e, 'INTERNAL'));
  t.regex(e.message, /url: unknown keyword "format"/);
});
