import { configLogLevels, updateChannels, wireguardBackends } from './agent-config.js';
import { configDefaults, defaultSocketUrl } from './defaults.js';

/**
 * The JSON schema of the config file. validate.ts checks it with the semantics (and messages) of
 * Ajv's draft 2020-12 dialect, so the schema declares 2020-12; it uses only keywords that mean the
 * same in draft-07, so older editors read it too, and only the keywords validate.ts knows (a unit
 * test fails on any other). Every object is closed (`additionalProperties: false`) so that a
 * typo is an error rather than a silently ignored setting; label maps are the only open objects.
 * `description` is the "expected" text shown in validation errors, so it says what a good value is.
 */
export type JsonValue =
  string | number | boolean | null | readonly JsonValue[] | { readonly [k: string]: JsonValue };

export interface JsonSchema {
  readonly $schema?: string;
  readonly title?: string;
  readonly description?: string;
  readonly type?: 'object' | 'array' | 'string' | 'integer';
  readonly properties?: Readonly<Record<string, JsonSchema>>;
  readonly required?: readonly string[];
  readonly additionalProperties?: boolean | JsonSchema;
  readonly propertyNames?: JsonSchema;
  readonly items?: JsonSchema;
  readonly enum?: readonly string[];
  readonly pattern?: string;
  readonly minLength?: number;
  readonly maxLength?: number;
  readonly minimum?: number;
  readonly maximum?: number;
  readonly default?: JsonValue;
  readonly examples?: readonly JsonValue[];
}

// Regex pieces, kept readable here rather than as one opaque string per field.
const port = '(?:6553[0-5]|655[0-2][0-9]|65[0-4][0-9]{2}|6[0-4][0-9]{3}|[1-5][0-9]{4}|[1-9][0-9]{0,3})';
const host = '(?:\\[[0-9A-Fa-f:.]+\\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)';
const unixUrl = 'unix://(?:/[^/\\s]+)+';
const dnsLabel = '[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?';
const octet = '(?:25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])';
const ipv4Cidr = `(?:${octet}\\.){3}${octet}/(?:3[0-2]|[12]?[0-9])`;
const ipv6Cidr = '[0-9A-Fa-f:]*:[0-9A-Fa-f:.]*/(?:12[0-8]|1[01][0-9]|[1-9]?[0-9])';
const semver =
  'v?(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)\\.(?:0|[1-9][0-9]*)(?:-[0-9A-Za-z.-]+)?(?:\\+[0-9A-Za-z.-]+)?';

const absolutePath: JsonSchema = { type: 'string', pattern: '^/', minLength: 2 };

const labels: JsonSchema = {
  type: 'object',
  description:
    'labels as "key": "value" strings; keys are letters, digits and ._/- and start with a letter or digit',
  propertyNames: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_./-]*$', maxLength: 253 },
  additionalProperties: { type: 'string', maxLength: 256 },
  default: {},
};

export const configSchema: JsonSchema = {
  $schema: 'https://json-schema.org/draft/2020-12/schema',
  title: 'nsm-agent config',
  description: 'Declarative config of one nsm-agent host (/etc/nsm-agent/config.json).',
  type: 'object',
  additionalProperties: false,
  properties: {
    $schema: { type: 'string', description: 'path or URL of this schema, for editors; ignored by the agent' },
    mesh: {
      type: 'object',
      description: 'the mesh this host belongs to; usually written by `nsm-agent enroll`',
      additionalProperties: false,
      properties: {
        server: {
          type: 'string',
          description: 'URL of the mesh control server, tcp://host:port',
          pattern: `^tcp://${host}:${port}$`,
          examples: ['tcp://mesh.example:5002'],
        },
        trustDomain: {
          type: 'string',
          description: 'SPIFFE trust domain name without spiffe:// (lowercase letters, digits, . _ -)',
          pattern: '^[a-z0-9._-]+$',
          maxLength: 255,
          examples: ['mesh.example'],
        },
      },
    },
    agent: {
      type: 'object',
      description: 'this agent: name, listen addresses and directories',
      additionalProperties: false,
      properties: {
        name: {
          type: 'string',
          description: 'agent name in the mesh, letters, digits and ._- (default: the host name)',
          pattern: '^[A-Za-z0-9](?:[A-Za-z0-9_.-]{0,62}[A-Za-z0-9])?$',
        },
        listen: {
          type: 'object',
          description: 'listen addresses',
          additionalProperties: false,
          properties: {
            nsm: {
              type: 'string',
              description:
                'NSM API for local clients and endpoints, unix:///absolute/path or tcp://[host]:port',
              pattern: `^(?:${unixUrl}|tcp://(?:${host})?:${port})$`,
              default: defaultSocketUrl(configDefaults.runDir, 'nsm'),
            },
            remote: {
              type: 'string',
              description: 'NSM API for remote agents (mTLS), tcp://[host]:port',
              pattern: `^tcp://(?:${host})?:${port}$`,
              default: configDefaults.remote,
            },
            api: {
              type: 'string',
              description: 'local control API for the CLI, unix:///absolute/path',
              pattern: `^${unixUrl}$`,
              default: defaultSocketUrl(configDefaults.runDir, 'api'),
            },
            metrics: {
              type: 'string',
              description: 'Prometheus /metrics address, [host]:port',
              pattern: `^(?:${host})?:${port}$`,
              default: configDefaults.metrics,
            },
          },
        },
        stateDir: {
          ...absolutePath,
          description: 'absolute directory for identity, connection journal and update state',
          default: configDefaults.stateDir,
        },
        runDir: {
          ...absolutePath,
          description: 'absolute directory for sockets; the default sockets move with it',
          default: configDefaults.runDir,
        },
        liveness: {
          type: 'object',
          description:
            "data-plane liveness check of this host's connections: the service address is pinged through the connection; missed replies make the agent pick another endpoint or path",
          additionalProperties: false,
          properties: {
            intervalMs: {
              type: 'integer',
              description: 'milliseconds between pings, 100 to 60000, or 0 to turn the check off',
              minimum: 0,
              maximum: 60_000,
              default: configDefaults.livenessIntervalMs,
            },
            misses: {
              type: 'integer',
              description: 'intervals in a row without a reply after which the path is dead, 1 to 60',
              minimum: 1,
              maximum: 60,
              default: configDefaults.livenessMisses,
            },
          },
        },
      },
    },
    wireguard: {
      type: 'object',
      description: 'the WireGuard data plane',
      additionalProperties: false,
      properties: {
        port: {
          type: 'integer',
          description: 'UDP port WireGuard listens on, an integer from 1 to 65535',
          minimum: 1,
          maximum: 65535,
          default: configDefaults.wireguardPort,
        },
        interface: {
          type: 'string',
          description: 'WireGuard interface name, 1-15 characters: letters, digits and _.-',
          pattern: '^[A-Za-z0-9_.-]+$',
          minLength: 1,
          maxLength: 15,
          default: configDefaults.wireguardInterface,
        },
        backend: {
          type: 'string',
          description: 'auto (kernel WireGuard when the kernel has it), kernel, or userspace (wireguard-go)',
          enum: wireguardBackends,
          default: configDefaults.wireguardBackend,
        },
      },
    },
    connects: {
      type: 'array',
      description: 'mesh services this host (or a netns on it) consumes',
      default: [],
      items: {
        type: 'object',
        description: 'a service to connect to: {"service": "db-net"}',
        additionalProperties: false,
        required: ['service'],
        properties: {
          service: {
            type: 'string',
            description: 'network service name (lowercase DNS label), optionally @domain for another mesh',
            pattern: `^${dnsLabel}(?:@${host})?$`,
            examples: ['db-net'],
          },
          netns: {
            type: 'string',
            description: 'network namespace: a name under /run/netns or an absolute path (default: the host)',
            pattern: '^(?:/\\S+|[A-Za-z0-9_.-]+)$',
          },
          labels,
        },
      },
    },
    exposes: {
      type: 'array',
      description: 'host processes offered to the mesh as network services',
      default: [],
      items: {
        type: 'object',
        description: 'a service to expose: {"service": "payments"}',
        additionalProperties: false,
        required: ['service'],
        properties: {
          service: {
            type: 'string',
            description: 'network service name, a lowercase DNS label (becomes <service>.nsm)',
            pattern: `^${dnsLabel}$`,
            examples: ['payments'],
          },
          cidr: {
            type: 'string',
            description: 'address range handed out to connections, an IPv4 or IPv6 CIDR',
            pattern: `^(?:${ipv4Cidr}|${ipv6Cidr})$`,
            default: configDefaults.exposeCidr,
          },
          labels,
          allow: {
            type: 'array',
            description:
              'SPIFFE ID patterns allowed to connect, e.g. spiffe://mesh.example/agent/* (default: the mesh)',
            items: {
              type: 'string',
              description: 'a SPIFFE ID pattern, spiffe://<trust-domain>/<path>, * as wildcard',
              pattern: '^spiffe://(?:\\*|[a-z0-9._-]+)(?:/\\S*)?$',
            },
          },
        },
      },
    },
    update: {
      type: 'object',
      description: 'self-update',
      additionalProperties: false,
      properties: {
        channel: {
          type: 'string',
          description: 'the release channel to follow',
          enum: updateChannels,
          default: configDefaults.updateChannel,
        },
        pin: {
          type: 'string',
          description: 'a version to stay on instead of following the channel, semver like 1.4.2',
          pattern: `^${semver}$`,
        },
      },
    },
    log: {
      type: 'object',
      description: 'logging',
      additionalProperties: false,
      properties: {
        level: {
          type: 'string',
          description: 'how much the daemon logs',
          enum: configLogLevels,
          default: configDefaults.logLevel,
        },
      },
    },
  },
};
