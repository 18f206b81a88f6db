import pkg from '../../package.json' with { type: 'json' };

/** The agent's version, from package.json (bundled into the single binary at build time). */
export function agentVersion(): string {
  return pkg.version;
}
