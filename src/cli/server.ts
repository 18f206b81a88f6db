import { Command } from 'commander';
import type { CliIo } from './cli-io.js';
import { notAvailable } from './not-available.js';

/** `nsm-agent server …`: the mesh control server (registry + enrolment CA) for meshes without Kubernetes. */
export function serverCommand(_io: CliIo): Command {
  const server = new Command('server')
    .summary('mesh control server: registry + enrolment CA')
    .description('mesh control server: NSM registry and enrolment CA (port 5002)');
  server
    .command('init')
    .description('create the mesh CA and the server identity for a trust domain')
    .requiredOption('--trust-domain <name>', 'SPIFFE trust domain of the new mesh, e.g. mesh.example')
    .action(() => notAvailable('server init', 'creating a mesh'));
  server
    .command('run')
    .description('run the control server')
    .option('--store <url>', 'registry store: embedded (default) or etcd://host:port')
    .action(() => notAvailable('server run', 'the control server'));
  server
    .command('issue')
    .description('issue an X.509-SVID from the mesh CA for a SPIFFE ID (e.g. for an NSM cluster component)')
    .argument('<spiffe-id>', 'SPIFFE ID to certify, spiffe://<trust-domain>/<path>')
    .option('--out <dir>', 'directory for the key, certificate and bundle', '.')
    .action(() => notAvailable('server issue', 'issuing certificates'));
  return server;
}
