import { Command } from 'commander';
import type { StatusReport } from '../localapi/index.js';
import { agentClient, callOptions, withApiOption } from './agent-api.js';
import { bareAddress, formatSeconds, formatTable } from './agent-format.js';
import { printJson, printLine } from './cli-io.js';
import type { CliIo } from './cli-io.js';

export function statusCommand(io: CliIo): Command {
  return withApiOption(
    new Command('status')
      .summary('show identity, mesh and connections')
      .description("show this agent's identity, mesh, connections and exposed services")
      .option('--json', 'machine-readable JSON on stdout'),
  ).action(async (o: { json?: boolean }, cmd: Command) => {
    const client = await agentClient(cmd, io);
    const report = await client.status(callOptions(io));
    if (o.json) printJson(io, report);
    else printStatus(io, report);
  });
}

function printStatus(io: CliIo, r: StatusReport): void {
  const out = (text = ''): void => printLine(io.stdout, text);
  const { agent, identity, server, dataplane } = r;
  out(
    `agent ${agent.name}: ${agent.ready ? 'ready' : 'starting (not ready yet)'} (pid ${agent.pid}, nsm-agent ${agent.version}, since ${agent.startedAt})`,
  );
  const expiry =
    identity.secondsToExpiry > 0
      ? `expires in ${formatSeconds(identity.secondsToExpiry)} (${identity.expiresAt})`
      : `EXPIRED at ${identity.expiresAt}; re-enrol: nsm-agent enroll --replace --token-file <file>`;
  const renewal = identity.nextRenewalAt === undefined ? '' : `, renews at ${identity.nextRenewalAt}`;
  out(`identity    ${identity.spiffeId}, ${expiry}${renewal}`);
  const since = server.since === undefined ? '' : ` since ${server.since}`;
  const lastError = server.lastError === undefined ? '' : ` (last error: ${server.lastError})`;
  out(`server      ${server.url} ${server.state}${since}${lastError}`);
  out(`data plane  ${dataplane.device} (${dataplane.backend} WireGuard), UDP port ${dataplane.listenPort}`);
  out(
    `listening   remote ${agent.listen.remote} (dialled as ${agent.publicUrl}), nsm ${agent.listen.nsm}, api ${agent.listen.api}, metrics ${agent.listen.metrics}`,
  );

  out();
  if (r.connections.length === 0) {
    out('connections: none (nsm-agent connect <service>)');
  } else {
    out(`connections (${r.connections.length}):`);
    const rows = r.connections.map((c) => [
      c.state,
      c.service,
      c.netns ?? '-',
      `${c.localAddresses.join(',') || '-'} → ${c.serviceAddresses.map(bareAddress).join(',') || '-'}`,
      c.handshakeAgeSeconds === undefined ? '-' : `${formatSeconds(c.handshakeAgeSeconds)} ago`,
      String(c.heals),
    ]);
    const header = ['STATE', 'SERVICE', 'NETNS', 'ADDRESS → SERVICE ADDRESS', 'HANDSHAKE', 'HEALS'];
    for (const line of formatTable(header, rows)) out(`  ${line}`);
    for (const c of r.connections) {
      if (c.lastError !== undefined) out(`  ${c.service}: ${c.lastError}`);
    }
  }

  out();
  if (r.exposes.length === 0) {
    out('exposed: none (nsm-agent expose <service>)');
  } else {
    out(`exposed (${r.exposes.length}):`);
    const rows = r.exposes.map((e) => [
      e.service,
      `${bareAddress(e.serviceAddress)} (${e.dnsName})`,
      e.registration,
      String(e.connections),
      e.allow.length === 0 ? 'everyone in the mesh' : e.allow.join(','),
    ]);
    for (const line of formatTable(['SERVICE', 'ADDRESS', 'REGISTRATION', 'CONNECTIONS', 'ALLOW'], rows)) {
      out(`  ${line}`);
    }
    if (r.exposes.some((e) => e.registration === 'queued')) {
      out('  queued: the control server is unreachable; registered when it is back');
    }
  }
  out();
  out(`serving ${r.served} connection(s) for other agents' clients`);
}
