// Import layering (STYLE.md "Our conventions" 2) and cycle checks, run by `npm test`.
// A folder may import only from its own layer's folder and from lower layers.
const layers = [
  ['log', 'errors', 'util'],
  ['host'],
  // metrics (prom-client families, /metrics server) uses host's Clock and is fed by anything above it.
  ['metrics'],
  ['config'],
  ['api'],
  // store is the registry/identity storage contract; chain is the NetworkService chain framework.
  ['chain', 'store'],
  ['forwarder', 'registry', 'identity', 'update', 'workloads', 'nsmgr'],
  ['localapi'],
  // cli and daemon are peers: main wires them (it hands `run` the daemon), neither imports the other.
  ['daemon', 'cli'],
  ['main'],
];
const known = layers.flat();

function folderRe(names) {
  return `^src/(${names.join('|')})(/|\\.ts$)`;
}

const forbidden = [];
layers.forEach((layer, i) => {
  const higher = layers.slice(i + 1).flat();
  if (higher.length > 0)
    forbidden.push({
      name: `layer-${layer.join('-')}`,
      comment: `${layer.join(', ')} may not import from higher layers (${higher.join(', ')}); see STYLE.md conventions 2`,
      severity: 'error',
      from: { path: folderRe(layer) },
      to: { path: folderRe(higher) },
    });
  // Siblings in one layer are peers, not dependencies of each other; the daemon composes them.
  if (layer.length > 1 && i > 0) {
    for (const name of layer) {
      forbidden.push({
        name: `sibling-${name}`,
        comment: `${name} may not import its sibling layers (${layer.filter((n) => n !== name).join(', ')}); compose them in daemon`,
        severity: 'error',
        from: { path: folderRe([name]) },
        to: { path: folderRe(layer.filter((n) => n !== name)) },
      });
    }
  }
});
forbidden.push(
  {
    name: 'cli-uses-localapi-config-log-only',
    comment: 'cli talks to the daemon only through the localapi client, plus config, log, errors and util',
    severity: 'error',
    from: { path: '^src/cli/' },
    to: {
      path: folderRe(
        known.filter(
          (n) => !['cli', 'localapi', 'config', 'log', 'errors', 'util', 'api', 'host'].includes(n),
        ),
      ),
    },
  },
  {
    name: 'fakes-are-for-tests',
    comment:
      'fakes (src/<module>/fake, e.g. src/host/fake, src/nsmgr/fake) are shared by tests; product code never imports them',
    severity: 'error',
    from: { path: '^src/', pathNot: '^src/[^/]+/fake/' },
    to: { path: '^src/[^/]+/fake/' },
  },
  {
    name: 'wire-types-through-api-index',
    comment: 'outside src/api, import the wire types from src/api/index.ts, never from src/api/gen',
    severity: 'error',
    from: { path: '^src/', pathNot: '^src/api/' },
    to: { path: '^src/api/gen/' },
  },
  {
    name: 'gen-only-through-api',
    comment: 'generated code is an implementation detail of src/api; generated files import nothing of ours',
    severity: 'error',
    from: { path: '^src/api/gen/' },
    to: { path: '^src/', pathNot: '^src/api/gen/' },
  },
  {
    name: 'no-circular',
    comment: 'circular imports make start-up order fragile and hide layering mistakes',
    severity: 'error',
    from: {},
    to: { circular: true },
  },
  {
    name: 'unknown-src-folder',
    comment: `every src folder belongs to a layer: ${known.join(', ')}; add new ones to .dependency-cruiser.cjs`,
    severity: 'error',
    from: { path: '^src/', pathNot: `${folderRe(known)}|^src/[^/]+\\.ts$` },
    to: {},
  },
  {
    name: 'not-to-test',
    comment: 'product code does not import tests',
    severity: 'error',
    from: { path: '^src/' },
    to: { path: '^(test|bench|scripts)/' },
  },
);

module.exports = {
  forbidden,
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js'],
    },
    moduleSystems: ['es6', 'cjs'],
  },
};
