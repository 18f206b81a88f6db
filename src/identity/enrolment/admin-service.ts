import { implement, parseSpiffeId } from '../../api/grpc/index.js';
import type { CallContext, ServiceRegistration } from '../../api/grpc/index.js';
import { EnrolmentAdminService, toTimestamp } from '../../api/index.js';
import type { HostInfoSchema, MessageInitShape, TokenInfoSchema } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import { silentLogger } from '../../log/index.js';
import type { Logger } from '../../log/index.js';
import type { HostRecord } from '../hosts/host-record.js';
import type { HostStore } from '../hosts/host-store.js';
import type { TokenInfo } from '../tokens/token-record.js';
import type { TokenStore } from '../tokens/token-store.js';

/** Who may administer: gets the caller's verified SPIFFE ID (undefined on a plain unix socket). */
export type AuthorizeAdmin = (peer: CallContext['peer']) => boolean;

export interface EnrolmentAdminServiceOptions {
  readonly tokens: TokenStore;
  readonly hosts: HostStore;
  /** The enrolment URL hosts dial, written into every token: tcp://<public name>:5002. */
  readonly serverUrl: string;
  /** MeshCa.pin, written into every token. */
  readonly caPin: Uint8Array;
  /**
   * Required, on purpose: there is no safe default. For a server that only listens on a root-only
   * unix socket, `() => true`; on a TLS listener, `adminSpiffeIds(td)`.
   */
  readonly authorize: AuthorizeAdmin;
  readonly log?: Logger;
}

/** Accepts callers whose verified SVID is `spiffe://<td>/admin/<name>` (see issueToolIdentity). */
export function adminSpiffeIds(trustDomain: string): AuthorizeAdmin {
  return (peer) => {
    if (peer.spiffeId === undefined) return false;
    const id = parseSpiffeId(peer.spiffeId);
    return id.trustDomain === trustDomain && id.path.startsWith('/admin/');
  };
}

type TokenInfoInit = MessageInitShape<typeof TokenInfoSchema>;
type HostInfoInit = MessageInitShape<typeof HostInfoSchema>;

/**
 * `nsmagent.enrol.v1.EnrolmentAdmin`: what `nsm-agent token …` and `nsm-agent hosts …` call. The
 * running server holds the store (the embedded store locks its directory), so these go through it.
 */
export function enrolmentAdminService(options: EnrolmentAdminServiceOptions): ServiceRegistration {
  const { tokens, hosts } = options;
  const log = (options.log ?? silentLogger()).child({ subsystem: 'enrolment-admin' });
  const guard = (ctx: CallContext): void => {
    let allowed: boolean;
    try {
      allowed = options.authorize(ctx.peer);
    } catch {
      allowed = false;
    }
    if (!allowed) {
      log.warn({ method: ctx.method, peer: ctx.peer.spiffeId ?? ctx.peer.address }, 'admin call refused');
      throw new AgentError(
        'PERMISSION_DENIED',
        `${ctx.peer.spiffeId ?? 'this caller'} may not administer enrolment`,
        {
          hint: 'run the command on the control server as root, or use an admin identity (server issue --spiffe-id spiffe://<td>/admin/<name>)',
        },
      );
    }
  };

  return implement(EnrolmentAdminService, {
    async createToken(req, ctx) {
      guard(ctx);
      const created = await tokens.create({
        serverUrl: options.serverUrl,
        caPin: options.caPin,
        ...(req.ttlSeconds > 0 ? { ttlMs: req.ttlSeconds * 1000 } : {}),
        ...(req.uses > 0 ? { uses: req.uses } : {}),
        labels: req.labels,
      });
      return { token: created.token, info: tokenInfoMessage(created.info) };
    },
    async listTokens(_req, ctx) {
      guard(ctx);
      return { tokens: (await tokens.list()).map(tokenInfoMessage) };
    },
    async revokeToken(req, ctx) {
      guard(ctx);
      if (req.id === '')
        throw new AgentError('INVALID_ARGUMENT', 'which token? pass its id from `token list`');
      return tokenInfoMessage(await tokens.revoke(req.id));
    },
    async listHosts(_req, ctx) {
      guard(ctx);
      return { hosts: (await hosts.list()).map(hostInfoMessage) };
    },
    async revokeHost(req, ctx) {
      guard(ctx);
      if (req.host === '')
        throw new AgentError('INVALID_ARGUMENT', 'which host? pass its id or hostname from `hosts list`');
      return hostInfoMessage(await hosts.revoke(req.host));
    },
  });
}

function tokenInfoMessage(i: TokenInfo): TokenInfoInit {
  return {
    id: i.id,
    createdAt: toTimestamp(i.createdAt),
    expiresAt: toTimestamp(i.expiresAt),
    usesAllowed: i.usesAllowed,
    usesLeft: i.usesLeft,
    labels: { ...i.labels },
    ...(i.revokedAt === undefined ? {} : { revokedAt: toTimestamp(i.revokedAt) }),
    state: i.state,
  };
}

function hostInfoMessage(h: HostRecord): HostInfoInit {
  return {
    hostId: h.hostId,
    spiffeId: h.spiffeId,
    labels: { ...h.labels },
    facts: { ...h.facts },
    tokenId: h.tokenId,
    enrolledAt: toTimestamp(h.enrolledAt),
    lastSeenAt: toTimestamp(h.lastSeenAt),
    svidExpiresAt: toTimestamp(h.svidExpiresAt),
    ...(h.revokedAt === undefined ? {} : { revokedAt: toTimestamp(h.revokedAt) }),
    svidSerial: h.svidSerial,
  };
}
