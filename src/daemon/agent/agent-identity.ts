import { X509Certificate } from 'node:crypto';
import {
  clientCredentials,
  updatableClientCredentials,
  updatableServerCredentials,
} from '../../api/grpc/index.js';
import type {
  ClientTlsCredentials,
  ExpectedPeer,
  UpdatableClientCredentials,
  UpdatableServerCredentials,
} from '../../api/grpc/index.js';
import { createTokenSigner } from '../../api/token/index.js';
import type { TokenSigner } from '../../api/token/index.js';
import { AgentError, describe } from '../../errors/index.js';
import type { Clock, Random, TimerHandle } from '../../host/index.js';
import { loadAgentIdentity, renewHost, renewalTime } from '../../identity/index.js';
import type { AgentIdentity } from '../../identity/index.js';
import type { Logger } from '../../log/index.js';
import type { PeerCertificate } from 'node:tls';

/** The agent's SVID as every part of the daemon uses it; follows renewals. */
export interface AgentIdentityView {
  readonly spiffeId: string;
  readonly trustDomain: string;
  readonly hostId: string;
  /** The control server's URL (from enrolment). */
  readonly serverUrl: string;
  readonly certificate: X509Certificate;
  readonly expiresAt: number;
  readonly nextRenewalAt: number | undefined;
}

const RETRY_MS = 30_000;

/**
 * Holds the agent identity, renews it at half-life (± jitter) with the control server, and hands the
 * renewed SVID to everything that presents it: the mTLS listener for remote agents (swapped in place),
 * the token signer (a stable object that delegates to the current key), and listeners that must
 * re-dial (registry proxy, remote agent connections). A failed renewal is retried every 30 s until
 * the SVID expires; a revoked host stops renewing and says so.
 */
export class IdentityKeeper {
  #identity: AgentIdentity;
  #cert: X509Certificate;
  #signer: TokenSigner;
  #nextRenewalAt: number | undefined;
  #timer: TimerHandle | undefined;
  #closed = false;
  readonly #listeners = new Set<() => void>();
  readonly #renewing = new Set<UpdatableClientCredentials>();
  readonly serverCredentials: UpdatableServerCredentials;
  /** Signs with whatever the current SVID is. */
  readonly signer: TokenSigner;

  private constructor(
    identity: AgentIdentity,
    private readonly o: { stateDir: string; clock: Clock; random: Random; log: Logger },
  ) {
    this.#identity = identity;
    this.#cert = leafOf(identity);
    this.#signer = this.#makeSigner();
    const trustDomain = identity.meta.trustDomain;
    this.serverCredentials = updatableServerCredentials(this.#pem(), {
      // Any member of the mesh may call; which services it may use is the authorize element's job.
      authorizePeer: (id) => id.startsWith(`spiffe://${trustDomain}/`),
    });
    this.signer = {
      get spiffeId() {
        return identity.meta.spiffeId;
      },
      mint: (peer, options) => this.#signer.mint(peer, options),
    };
  }

  /** Loads the identity from `<stateDir>/identity`; a host that is not enrolled gets a clear error. */
  static async load(o: {
    stateDir: string;
    clock: Clock;
    random: Random;
    log: Logger;
  }): Promise<IdentityKeeper> {
    const loaded = await loadAgentIdentity(o.stateDir, o.clock);
    if (loaded.identity === undefined) {
      const state = loaded.state;
      const why =
        state.state === 'not-enrolled'
          ? `this host is not enrolled (no identity in ${o.stateDir}/identity)`
          : state.state === 're-enrolment-required'
            ? state.reason
            : 'the identity cannot be used';
      throw new AgentError('FAILED_PRECONDITION', `cannot start the agent: ${why}`, {
        hint: `enrol first: nsm-agent enroll --token <token> --state-dir ${o.stateDir}`,
      });
    }
    const keeper = new IdentityKeeper(loaded.identity, o);
    // An identity loaded mid-renewal (svid.pem already matching svid.next.key) is finished now.
    if (loaded.identity.keyIsNext) await keeper.renewNow();
    return keeper;
  }

  get view(): AgentIdentityView {
    const m = this.#identity.meta;
    return {
      spiffeId: m.spiffeId,
      trustDomain: m.trustDomain,
      hostId: m.hostId,
      serverUrl: m.serverUrl,
      certificate: this.#cert,
      expiresAt: this.#identity.expiresAt,
      nextRenewalAt: this.#nextRenewalAt,
    };
  }

  get bundlePem(): string {
    return this.#identity.bundlePem;
  }

  /** mTLS client credentials with the current SVID (re-create after onRenewed). */
  clientCredentials(
    expected: ExpectedPeer,
    onServerCertificate?: (c: PeerCertificate) => void,
  ): ClientTlsCredentials {
    return clientCredentials({
      bundlePem: this.#identity.bundlePem,
      certChainPem: this.#identity.certChainPem,
      keyPem: this.#identity.keyPem,
      expectedServerId: expected,
      ...(onServerCertificate ? { onServerCertificate } : {}),
    });
  }

  /**
   * mTLS client credentials that follow renewals: channels made with them stay open across a
   * renewal and present the new SVID on their next connection. `release()` when the channel closes.
   */
  renewingClientCredentials(
    expected: ExpectedPeer,
    onServerCertificate?: (c: PeerCertificate) => void,
  ): UpdatableClientCredentials & { release(): void } {
    const creds = updatableClientCredentials(this.#pem(), {
      expectedServerId: expected,
      ...(onServerCertificate ? { onServerCertificate } : {}),
    });
    this.#renewing.add(creds);
    return { ...creds, release: () => this.#renewing.delete(creds) };
  }

  /** Called after each renewal (new key, certificate and bundle in place). */
  onRenewed(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Schedules renewals from now on. */
  start(): void {
    this.#schedule(
      renewalTime({ notBefore: this.#identity.issuedAt, notAfter: this.#identity.expiresAt }, this.o.random),
    );
  }

  async renewNow(): Promise<void> {
    await renewHost({ stateDir: this.o.stateDir, clock: this.o.clock });
    const loaded = await loadAgentIdentity(this.o.stateDir, this.o.clock);
    if (loaded.identity === undefined) {
      throw new AgentError('INTERNAL', 'the renewed identity could not be read back');
    }
    this.#identity = loaded.identity;
    this.#cert = leafOf(loaded.identity);
    this.#signer = this.#makeSigner();
    this.serverCredentials.update(this.#pem());
    for (const c of this.#renewing) c.update(this.#pem());
    this.o.log.info(
      { spiffeId: this.#identity.meta.spiffeId, expiresAt: new Date(this.#identity.expiresAt).toISOString() },
      'SVID renewed',
    );
    for (const l of this.#listeners) {
      try {
        l();
      } catch (e: unknown) {
        this.o.log.error({ err: describe(e) }, 'a renewal listener failed');
      }
    }
  }

  close(): void {
    this.#closed = true;
    this.#timer?.cancel();
  }

  #schedule(at: number): void {
    if (this.#closed) return;
    this.#nextRenewalAt = at;
    this.#timer?.cancel();
    this.#timer = this.o.clock.setTimer(Math.max(0, at - this.o.clock.now()), () => {
      void this.#renewOnTimer();
    });
  }

  async #renewOnTimer(): Promise<void> {
    try {
      await this.renewNow();
      this.start();
    } catch (e: unknown) {
      const left = this.#identity.expiresAt - this.o.clock.now();
      if (AgentError.is(e, 'PERMISSION_DENIED')) {
        this.o.log.error(
          { err: describe(e) },
          'the control server refused to renew this host (revoked?); the agent keeps serving until the SVID expires, then must be enrolled again',
        );
        this.#nextRenewalAt = undefined;
        return;
      }
      this.o.log.warn(
        { err: describe(e), svidSecondsLeft: Math.round(left / 1000) },
        'SVID renewal failed; retrying in 30 s',
      );
      if (left > 0) this.#schedule(this.o.clock.now() + Math.min(RETRY_MS, left));
    }
  }

  #makeSigner(): TokenSigner {
    return createTokenSigner({
      spiffeId: this.#identity.meta.spiffeId,
      certificatePem: this.#identity.certChainPem,
      privateKeyPem: this.#identity.keyPem,
      clock: this.o.clock,
    });
  }

  #pem(): { bundlePem: string; certChainPem: string; keyPem: string } {
    return {
      bundlePem: this.#identity.bundlePem,
      certChainPem: this.#identity.certChainPem,
      keyPem: this.#identity.keyPem,
    };
  }
}

function leafOf(identity: AgentIdentity): X509Certificate {
  return new X509Certificate(identity.certChainPem);
}
