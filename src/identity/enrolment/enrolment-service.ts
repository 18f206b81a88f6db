import { implement, parseSpiffeId } from '../../api/grpc/index.js';
import type { CallContext, ServiceRegistration } from '../../api/grpc/index.js';
import { EnrolmentService, toTimestamp } from '../../api/index.js';
import type { EnrolResponseSchema, MessageInitShape } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import { systemClock, systemRandom } from '../../host/index.js';
import type { Clock, Random } from '../../host/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import { parseAgentCsr } from '../ca/agent-csr.js';
import { issueSvid } from '../ca/issue-svid.js';
import { agentSpiffeId } from '../ca/mesh-ca.js';
import type { IssuedSvid, MeshCa } from '../ca/mesh-ca.js';
import type { HostStore } from '../hosts/host-store.js';
import type { TokenStore } from '../tokens/token-store.js';
import { checkHostFacts } from './host-facts.js';

export interface EnrolmentServiceOptions {
  readonly ca: MeshCa;
  readonly tokens: TokenStore;
  readonly hosts: HostStore;
  /** Lifetime of agent SVIDs; default 1 h (SPIRE's default). Agents renew at half of it. */
  readonly svidTtlMs?: number;
  readonly clock?: Clock;
  /** Source of host ids. */
  readonly random?: Random;
  readonly log?: Logger;
}

export const DEFAULT_AGENT_SVID_TTL_MS = 3600_000;
const MAX_TOKEN_CHARS = 4096;

type Response = MessageInitShape<typeof EnrolResponseSchema>;

/**
 * The `nsmagent.enrol.v1.Enrolment` service. Serve it on a listener made with
 * enrolmentServerCredentials(), which lets Enrol in without a client certificate and gives Renew
 * the caller's verified SVID.
 */
export function enrolmentService(options: EnrolmentServiceOptions): ServiceRegistration {
  const { ca, tokens, hosts } = options;
  const clock = options.clock ?? systemClock;
  const random = options.random ?? systemRandom;
  const ttlMs = options.svidTtlMs ?? DEFAULT_AGENT_SVID_TTL_MS;
  const log = (options.log ?? silentLogger()).child({ subsystem: 'enrolment' });

  const respond = (svid: IssuedSvid, hostId: string): Response => ({
    svidChainDer: [svid.certDer],
    trustBundleDer: [...ca.bundleDer],
    spiffeId: svid.spiffeId,
    expiresAt: toTimestamp(svid.notAfter),
    hostId,
  });

  return implement(EnrolmentService, {
    async enrol(req, ctx) {
      if (req.token === '') throw new AgentError('INVALID_ARGUMENT', 'the request carries no token');
      if (req.token.length > MAX_TOKEN_CHARS)
        throw new AgentError('INVALID_ARGUMENT', 'the token is too long');
      // Everything that needs no state is checked before the token is used, so a malformed request
      // does not burn it.
      const facts = checkHostFacts(req.host);
      const csr = await parseAgentCsr(req.csrDer);
      const token = await tokens.consume(req.token);
      const hostId = random.uuid();
      const svid = await issueSvid(ca, {
        spiffeId: agentSpiffeId(ca.trustDomain, hostId),
        publicKeySpki: csr.publicKeySpki,
        ttlMs,
        clock,
      });
      await hosts.add({
        hostId,
        spiffeId: svid.spiffeId,
        labels: token.labels,
        facts,
        tokenId: token.id,
        svidSerial: svid.serial,
        svidExpiresAt: svid.notAfter,
      });
      log.info(
        {
          hostId,
          hostname: facts.hostname,
          tokenId: token.id,
          peer: ctx.peer.address,
          expiresAt: svid.notAfter,
        },
        'host enrolled',
      );
      return respond(svid, hostId);
    },

    async renew(req, ctx) {
      const hostId = renewingHost(ctx, ca.trustDomain);
      await hosts.requireActive(hostId);
      const facts = req.host === undefined ? undefined : checkHostFacts(req.host);
      const csr = await parseAgentCsr(req.csrDer);
      const svid = await issueSvid(ca, {
        spiffeId: agentSpiffeId(ca.trustDomain, hostId),
        publicKeySpki: csr.publicKeySpki,
        ttlMs,
        clock,
      });
      // Checks revocation again in the same compare-and-swap as the write: a revoke that lands
      // while we sign wins, and the new certificate is never handed out.
      await hosts.renewed(hostId, { serial: svid.serial, expiresAt: svid.notAfter }, facts);
      log.info({ hostId, peer: ctx.peer.address, expiresAt: svid.notAfter }, 'SVID renewed');
      return respond(svid, hostId);
    },
  });
}

/** The host id of a Renew call, from the verified client SVID. */
function renewingHost(ctx: CallContext, trustDomain: string): string {
  const id = ctx.peer.spiffeId;
  if (id === undefined) {
    throw new AgentError(
      'UNAUTHENTICATED',
      'Renew needs the host’s current SVID as its TLS client certificate',
      {
        hint: 'a host without a valid SVID must enrol again with a token',
      },
    );
  }
  const { trustDomain: td, path } = parseSpiffeId(id);
  const m = /^\/agent\/([^/]+)$/.exec(path);
  if (td !== trustDomain || !m?.[1]) {
    throw new AgentError(
      'PERMISSION_DENIED',
      `${id} is not an enrolled host identity (spiffe://${trustDomain}/agent/<host-id>); only hosts renew here`,
    );
  }
  return m[1];
}
