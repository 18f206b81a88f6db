// MatchEndpoint and IsSubset as nsm-api.md §4.8 states them, rule by rule, including NSM's own
// examples (the nodeName template, fallthrough, metadata without routes).
import test from 'ava';
import type { MessageInitShape, NetworkServiceEndpoint } from '../../../src/api/index.js';
import { create, NetworkServiceEndpointSchema, NetworkServiceSchema } from '../../../src/api/index.js';
import { AgentError } from '../../../src/errors/index.js';
import { GO_NO_VALUE, isSubset, matchEndpoint, renderSelectorValue } from '../../../src/nsmgr/index.js';

const NS = 'secure-intranet';

function nse(name: string, labels: Record<string, string>, service = NS): NetworkServiceEndpoint {
  return create(NetworkServiceEndpointSchema, {
    name,
    networkServiceNames: [NS],
    networkServiceLabels: { [service]: { labels } },
  });
}

// Three endpoints on two nodes; nse-other has its labels under another service's name only.
const endpoints = [
  nse('nse-1', { app: 'firewall', nodeName: 'node-1' }),
  nse('nse-2', { app: 'vpn-gateway', nodeName: 'node-2' }),
  nse('nse-3', { app: 'firewall', nodeName: 'node-2', zone: 'b' }),
  nse('nse-other', { app: 'firewall', nodeName: 'node-1' }, 'another-service'),
];

type Matches = NonNullable<MessageInitShape<typeof NetworkServiceSchema>['matches']>;

interface Case {
  readonly title: string;
  readonly matches: Matches;
  readonly labels: Record<string, string>;
  readonly want: string[];
}

const cases: Case[] = [
  {
    title: 'a service without matches: every endpoint, in the order given',
    matches: [],
    labels: { app: 'anything' },
    want: ['nse-1', 'nse-2', 'nse-3', 'nse-other'],
  },
  {
    title: 'destination selector against the endpoint labels for this service',
    matches: [{ routes: [{ destinationSelector: { app: 'firewall' } }] }],
    labels: {},
    want: ['nse-1', 'nse-3'],
  },
  {
    title: 'every key of the destination selector must match',
    matches: [{ routes: [{ destinationSelector: { app: 'firewall', nodeName: 'node-2' } }] }],
    labels: {},
    want: ['nse-3'],
  },
  {
    title: 'an empty source selector matches any request',
    matches: [{ sourceSelector: {}, routes: [{ destinationSelector: { app: 'vpn-gateway' } }] }],
    labels: { app: 'client' },
    want: ['nse-2'],
  },
  {
    title: 'a match whose source selector is not in the request labels is skipped',
    matches: [
      { sourceSelector: { app: 'admin' }, routes: [{ destinationSelector: { app: 'vpn-gateway' } }] },
      { sourceSelector: { app: 'client' }, routes: [{ destinationSelector: { app: 'firewall' } }] },
    ],
    labels: { app: 'client', team: 'x' },
    want: ['nse-1', 'nse-3'],
  },
  {
    title: 'the first match that applies decides, later ones are not looked at',
    matches: [
      { sourceSelector: { app: 'client' }, routes: [{ destinationSelector: { zone: 'b' } }] },
      { sourceSelector: {}, routes: [{ destinationSelector: { app: 'firewall' } }] },
    ],
    labels: { app: 'client' },
    want: ['nse-3'],
  },
  {
    title: 'no match applies: no endpoint',
    matches: [{ sourceSelector: { app: 'admin' }, routes: [{ destinationSelector: { app: 'firewall' } }] }],
    labels: { app: 'client' },
    want: [],
  },
  {
    title: 'routes in order; an endpoint selected by two routes is listed twice (two round-robin turns)',
    matches: [
      {
        routes: [
          { destinationSelector: { nodeName: 'node-2' } },
          { destinationSelector: { app: 'firewall' }, weight: 7 },
        ],
      },
    ],
    labels: {},
    want: ['nse-2', 'nse-3', 'nse-1', 'nse-3'],
  },
  {
    title: 'fallthrough: a match without candidates passes to the next match (NSM example)',
    matches: [
      {
        sourceSelector: { app: 'client' },
        routes: [{ destinationSelector: { app: 'gone' } }],
        fallthrough: true,
      },
      { sourceSelector: { app: 'client' }, routes: [{ destinationSelector: { app: 'vpn-gateway' } }] },
    ],
    labels: { app: 'client' },
    want: ['nse-2'],
  },
  {
    title: 'fallthrough does not pass on when the match has candidates',
    matches: [
      { routes: [{ destinationSelector: { zone: 'b' } }], fallthrough: true },
      { routes: [{ destinationSelector: { app: 'vpn-gateway' } }] },
    ],
    labels: {},
    want: ['nse-3'],
  },
  {
    title: 'without fallthrough a match without candidates gives none, even if a later one would',
    matches: [
      { routes: [{ destinationSelector: { app: 'gone' } }] },
      { routes: [{ destinationSelector: { app: 'vpn-gateway' } }] },
    ],
    labels: {},
    want: [],
  },
  {
    title: 'metadata and no routes: every endpoint (NSM example: the match only selects forwarders)',
    matches: [{ sourceSelector: { app: 'client' }, metadata: { labels: { p2p: 'true' } } }],
    labels: { app: 'client' },
    want: ['nse-1', 'nse-2', 'nse-3', 'nse-other'],
  },
  {
    title: 'metadata with routes that select nothing: none',
    matches: [{ metadata: { labels: {} }, routes: [{ destinationSelector: { app: 'gone' } }] }],
    labels: {},
    want: [],
  },
  {
    title: 'no metadata and no routes: none',
    matches: [{ sourceSelector: { app: 'client' } }],
    labels: { app: 'client' },
    want: [],
  },
  {
    title: 'nodeName template: the endpoint on the client node (NSM example)',
    matches: [{ routes: [{ destinationSelector: { nodeName: '{{.nodeName}}' } }] }],
    labels: { nodeName: 'node-1' },
    want: ['nse-1'],
  },
  {
    title: 'templates mix with literal text and Go trim markers',
    matches: [{ routes: [{ destinationSelector: { nodeName: 'node-{{- .n -}} ' } }] }],
    labels: { n: '2' },
    want: ['nse-2', 'nse-3'],
  },
  {
    title: 'a template in the source selector renders the request labels too',
    matches: [
      {
        sourceSelector: { home: '{{.nodeName}}' },
        routes: [{ destinationSelector: { app: 'vpn-gateway' } }],
      },
      { routes: [{ destinationSelector: { zone: 'b' } }] },
    ],
    labels: { nodeName: 'node-1', home: 'node-1' },
    want: ['nse-2'],
  },
  {
    title: 'a template over a label the request lacks renders as Go does ("<no value>") and selects nothing',
    matches: [{ routes: [{ destinationSelector: { nodeName: '{{.nodeName}}' } }] }],
    labels: { app: 'client' },
    want: [],
  },
];

for (const c of cases) {
  test(`matchEndpoint: ${c.title}`, (t) => {
    const ns = create(NetworkServiceSchema, { name: NS, matches: c.matches });
    t.deepEqual(
      matchEndpoint(c.labels, ns, endpoints).map((e) => e.name),
      c.want,
    );
  });
}

test('matchEndpoint returns a new list and leaves the endpoints given alone', (t) => {
  const ns = create(NetworkServiceSchema, { name: NS });
  const given = [...endpoints];
  const got = matchEndpoint({}, ns, given);
  got.pop();
  t.is(given.length, endpoints.length);
});

interface SubsetCase {
  readonly title: string;
  readonly a: Record<string, string>;
  readonly b: Record<string, string>;
  readonly vars?: Record<string, string>;
  readonly want: boolean;
}

const subsetCases: SubsetCase[] = [
  { title: 'empty selector, empty labels', a: {}, b: {}, want: true },
  { title: 'equal values', a: { x: '1', y: '2' }, b: { x: '1' }, want: true },
  { title: 'different value', a: { x: '1' }, b: { x: '2' }, want: false },
  { title: 'key missing', a: { x: '1', y: '2' }, b: { z: '1' }, want: false },
  // NSM's quirks, kept for compatibility: a missing key reads as "", but only if `a` has enough keys.
  {
    title: 'a missing key equals an empty selector value',
    a: { x: '1', y: '2' },
    b: { x: '1', z: '' },
    want: true,
  },
  {
    title: 'a selector with more keys than the labels never matches',
    a: { x: '1' },
    b: { x: '1', z: '' },
    want: false,
  },
  {
    title: 'template rendered with vars',
    a: { node: 'n1' },
    b: { node: '{{.me}}' },
    vars: { me: 'n1' },
    want: true,
  },
  {
    title: 'template rendered to another value',
    a: { node: 'n1' },
    b: { node: '{{.me}}' },
    vars: { me: 'n2' },
    want: false,
  },
  {
    title: 'literal equality needs no rendering',
    a: { v: '{{.x}}' },
    b: { v: '{{.x}}' },
    vars: {},
    want: true,
  },
  {
    title: 'a label whose value is literally Go\'s "<no value>"',
    a: { v: GO_NO_VALUE },
    b: { v: '{{.x}}' },
    want: true,
  },
];

for (const c of subsetCases) {
  test(`isSubset: ${c.title}`, (t) => {
    t.is(isSubset(c.a, c.b, c.vars ?? {}), c.want);
  });
}

test('renderSelectorValue renders the {{.key}} subset as Go text/template does', (t) => {
  const labels = { nodeName: 'node-1', _x9: 'u', ключ: 'v' };
  t.is(renderSelectorValue('plain', labels), 'plain');
  t.is(renderSelectorValue('{{.nodeName}}', labels), 'node-1');
  t.is(renderSelectorValue('{{ .nodeName }}', labels), 'node-1');
  t.is(renderSelectorValue('a-{{.nodeName}}-{{._x9}}', labels), 'a-node-1-u');
  t.is(renderSelectorValue('a  {{- .nodeName -}}  b', labels), 'anode-1b');
  t.is(renderSelectorValue('a {{ .nodeName }} b', labels), 'a node-1 b');
  t.is(renderSelectorValue('{{.ключ}}', labels), 'v');
  t.is(renderSelectorValue('{{.missing}}', labels), '<no value>');
  t.is(renderSelectorValue('}} alone', labels), '}} alone');
});

const unsupported = [
  '{{.}}',
  '{{if .nodeName}}x{{end}}',
  '{{.a.b}}',
  '{{printf "%s" .nodeName}}',
  '{{.nodeName | printf "%s"}}',
  '{{/* comment */}}',
  '{{$x := 1}}',
  '{{-.nodeName}}',
  '{{.node-name}}',
  'node-{{.nodeName',
];

for (const value of unsupported) {
  test(`renderSelectorValue refuses template syntax beyond {{.key}}: ${value}`, (t) => {
    const err = t.throws(() => renderSelectorValue(value, { nodeName: 'n' }), { instanceOf: AgentError });
    t.is(err.code, 'INVALID_ARGUMENT');
    t.true(err.message.includes(JSON.stringify(value)), err.message);
    t.regex(err.message, /\{\{\.labelName\}\}/);
  });
}

test('matchEndpoint refuses a service whose selector uses unsupported template syntax', (t) => {
  const ns = create(NetworkServiceSchema, {
    name: NS,
    matches: [{ routes: [{ destinationSelector: { nodeName: '{{if .nodeName}}{{.nodeName}}{{end}}' } }] }],
  });
  const err = t.throws(() => matchEndpoint({ nodeName: 'node-1' }, ns, endpoints), {
    instanceOf: AgentError,
  });
  t.is(err.code, 'INVALID_ARGUMENT');
  t.regex(err.message, /fix the network service matches/);
});
