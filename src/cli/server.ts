import { Command } from 'commander';
import { handlersOf } from '../localapi/index.js';
import { globalOptions, printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';
import { duration } from './option-parsers.js';

export const defaultServerDataDir = '/var/lib/nsm-agent/server';
const dataDirOption = ['--data-dir <dir>', 'control server data directory', defaultServerDataDir] as const;

/** `nsm-agent server …`: the mesh control server (registry + enrolment CA) for meshes without Kubernetes. */
export function serverCommand(io: CliIo): Command {
  const server = new Command('server')
    .summary('mesh control server: registry + enrolment CA')
    .description('mesh control server: NSM registry and enrolment CA (port 5002)');
  server
    .command('init')
    .description('create the mesh CA and the server identity for a trust domain')
    .requiredOption('--trust-domain <name>', 'SPIFFE trust domain of the new mesh, e.g. mesh.example')
    .option(...dataDirOption)
    .option('--json', 'machine-readable JSON on stdout')
    .action(async (o: { trustDomain: string; dataDir: string; json?: boolean }) => {
      const r = await (
        await handlersOf(io)
      ).controlServer.init({ trustDomain: o.trustDomain, dataDir: o.dataDir });
      if (o.json) {
        printJson(io, r);
        return;
      }
      printLine(io.stdout, `created mesh ${r.trustDomain} in ${r.dataDir}`);
      printLine(io.stdout, `  server identity: ${r.serverSpiffeId}`);
      printLine(io.stdout, `  CA public key pin: ${r.caPin}`);
      printLine(io.stdout, `next: nsm-agent server run --data-dir ${r.dataDir}`);
    });
  server
    .command('run')
    .description('run the control server until SIGINT/SIGTERM')
    .option(...dataDirOption)
    .option('--listen <url>', 'where to serve the registry and enrolment API', 'tcp://:5002')
    .option(
      '--public-url <url>',
      'how hosts reach this server, written into tokens (default: tcp://<hostname>:<port>)',
    )
    .option(
      '--store <store>',
      'registry store: embedded (in the data dir), etcds://host:port[,host:port…] (an etcd cluster over TLS, ' +
        'shared by several servers; members are tried in order) or etcd://127.0.0.1:port (plaintext, loopback only)',
      'embedded',
    )
    .option(
      '--store-ca <file>',
      'etcds://: PEM CA certificate that signed etcd’s server certificates (required)',
    )
    .option(
      '--store-cert <file>',
      'etcds://: PEM client certificate for etcd --client-cert-auth (signed by etcd’s --trusted-ca-file, clientAuth)',
    )
    .option('--store-key <file>', 'etcds://: PEM private key of --store-cert')
    .addHelpText(
      'after',
      [
        '',
        'Several servers on different hosts share one etcd cluster, e.g.:',
        '  nsm-agent server run --store etcds://etcd-1:2379,etcd-2:2379,etcd-3:2379 \\',
        '    --store-ca /etc/nsm-agent/etcd-ca.pem --store-cert /etc/nsm-agent/etcd-client.pem \\',
        '    --store-key /etc/nsm-agent/etcd-client-key.pem',
        'etcd’s certificates must name each member as it appears in --store (DNS or IP SAN).',
      ].join('\n'),
    )
    .action(
      async (
        o: {
          dataDir: string;
          listen: string;
          publicUrl?: string;
          store: string;
          storeCa?: string;
          storeCert?: string;
          storeKey?: string;
        },
        cmd: Command,
      ) => {
        const signal = io.stopSignal?.() ?? new AbortController().signal;
        await (
          await handlersOf(io)
        ).controlServer.run(
          {
            dataDir: o.dataDir,
            listen: o.listen,
            store: o.store,
            ...(o.storeCa !== undefined ? { storeCa: o.storeCa } : {}),
            ...(o.storeCert !== undefined ? { storeCert: o.storeCert } : {}),
            ...(o.storeKey !== undefined ? { storeKey: o.storeKey } : {}),
            logLevel: globalOptions(cmd, io).logLevel ?? 'info',
            ...(o.publicUrl !== undefined ? { publicUrl: o.publicUrl } : {}),
          },
          signal,
          (info) => {
            printLine(io.stderr, `control server listening on ${info.url} (store ${info.store})`);
            printLine(io.stderr, `  hosts enrol through ${info.publicUrl}; admin socket ${info.adminSocket}`);
          },
        );
      },
    );
  server
    .command('issue')
    .description('issue an X.509-SVID from the mesh CA for a tool (grpcurl, scripts, monitoring)')
    .requiredOption('--spiffe-id <id>', 'SPIFFE ID to certify, spiffe://<trust-domain>/<path>')
    .option('--out <dir>', 'directory for svid.pem, svid.key and bundle.pem', '.')
    .option('--ttl <duration>', 'lifetime, e.g. 24h or 30d', duration)
    .option(...dataDirOption)
    .option('--json', 'machine-readable JSON on stdout')
    .action(async (o: { spiffeId: string; out: string; ttl?: number; dataDir: string; json?: boolean }) => {
      const r = await (
        await handlersOf(io)
      ).controlServer.issue({
        dataDir: o.dataDir,
        spiffeId: o.spiffeId,
        outDir: o.out,
        ...(o.ttl !== undefined ? { ttlMs: o.ttl } : {}),
      });
      if (o.json) {
        printJson(io, r);
        return;
      }
      printLine(io.stdout, `issued ${r.spiffeId} (expires ${r.expiresAt})`);
      printLine(io.stdout, `  certificate: ${r.certPath}`);
      printLine(io.stdout, `  key:         ${r.keyPath}`);
      printLine(io.stdout, `  bundle:      ${r.bundlePath}`);
    });
  return server;
}
