import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { spiffeIdFromCertificate } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { pemBlocks } from '../crypto/pem.js';
import { identityFiles } from './identity-files.js';
import type { IdentityMeta, RevokedMarker } from './identity-files.js';

/** Where this host stands (a tagged union; switch on `state`). */
export type IdentityState =
  | { readonly state: 'not-enrolled' }
  | {
      readonly state: 'enrolled';
      readonly spiffeId: string;
      readonly hostId: string;
      readonly trustDomain: string;
      readonly serverUrl: string;
      readonly enrolledAt: number;
      /** SVID notBefore and notAfter, ms since the epoch. */
      readonly issuedAt: number;
      readonly expiresAt: number;
    }
  | {
      readonly state: 're-enrolment-required';
      /** What is wrong and what to do, for people. */
      readonly reason: string;
    };

/** The identity as TLS needs it. Holds the private key: never log this object. */
export interface AgentIdentity {
  readonly meta: IdentityMeta;
  readonly certChainPem: string;
  readonly keyPem: string;
  readonly bundlePem: string;
  /**
   * True when a renewal was interrupted after svid.pem got the new certificate but before its key
   * (svid.next.key) replaced svid.key; keyPem is then the next key. renewHost completes the swap.
   */
  readonly keyIsNext: boolean;
  /** SVID notBefore and notAfter, ms since the epoch (for renewalTime). */
  readonly issuedAt: number;
  readonly expiresAt: number;
}

const REENROL = 'enrol this host again with a new token: nsm-agent enroll --token <token>';

/**
 * Reads `<stateDir>/identity/` and says whether the host is enrolled. Throws only when the files
 * cannot be read at all (permissions):
 * a missing, half-written or mismatched identity is "re-enrolment required" with the reason, so a
 * crash at any point of enrolment (R4) ends in a clear state. A join-token identity cannot be
 * re-attested (reliability §0.2), so an expired SVID also means re-enrolling.
 */
export async function readIdentityState(
  stateDir: string,
  clock: Clock = systemClock,
): Promise<IdentityState> {
  const loaded = await inspect(stateDir, clock);
  if (loaded.kind === 'none') return { state: 'not-enrolled' };
  if (loaded.kind === 'broken')
    return { state: 're-enrolment-required', reason: `${loaded.reason}; ${REENROL}` };
  const { meta, issuedAt, expiresAt } = loaded.identity;
  return {
    state: 'enrolled',
    spiffeId: meta.spiffeId,
    hostId: meta.hostId,
    trustDomain: meta.trustDomain,
    serverUrl: meta.serverUrl,
    enrolledAt: meta.enrolledAt,
    issuedAt,
    expiresAt,
  };
}

/** The identity for TLS, or undefined with the state that explains why not. */
export async function loadAgentIdentity(
  stateDir: string,
  clock: Clock = systemClock,
): Promise<
  { readonly identity: AgentIdentity } | { readonly identity: undefined; readonly state: IdentityState }
> {
  const loaded = await inspect(stateDir, clock);
  if (loaded.kind === 'ok') return { identity: loaded.identity };
  return { identity: undefined, state: await readIdentityState(stateDir, clock) };
}

type Inspection =
  | { readonly kind: 'none' }
  | { readonly kind: 'broken'; readonly reason: string }
  | { readonly kind: 'ok'; readonly identity: AgentIdentity };

async function inspect(stateDir: string, clock: Clock): Promise<Inspection> {
  const revokedText = await readOptional(identityFiles.revoked(stateDir));
  if (revokedText !== undefined) {
    let why = 'the control server revoked this host';
    try {
      const marker = JSON.parse(revokedText) as Partial<RevokedMarker>;
      if (typeof marker.at === 'number' && typeof marker.message === 'string') {
        why = `the control server revoked this host (renewal refused at ${new Date(marker.at).toISOString()}: ${marker.message})`;
      }
    } catch {
      // The marker's presence is what counts; its content only improves the message.
    }
    return { kind: 'broken', reason: why };
  }
  const [metaText, currentKeyPem, nextKeyPem, svidPem, bundlePem] = await Promise.all([
    readOptional(identityFiles.meta(stateDir)),
    readOptional(identityFiles.key(stateDir)),
    readOptional(identityFiles.nextKey(stateDir)),
    readOptional(identityFiles.svid(stateDir)),
    readOptional(identityFiles.bundle(stateDir)),
  ]);
  const keyPem = currentKeyPem;
  if (metaText === undefined) {
    if (keyPem === undefined && svidPem === undefined && bundlePem === undefined) return { kind: 'none' };
    return {
      kind: 'broken',
      reason: `an enrolment was interrupted: ${identityFiles.dir(stateDir)} has ${
        keyPem === undefined ? 'no key' : 'a key'
      } but no completed identity (the token it used is spent)`,
    };
  }
  const broken = (why: string): Inspection => ({
    kind: 'broken',
    reason: `the identity in ${identityFiles.dir(stateDir)} ${why}`,
  });
  let meta: IdentityMeta;
  try {
    const parsed = JSON.parse(metaText) as Partial<IdentityMeta> | null;
    if (parsed?.version !== 1 || typeof parsed.spiffeId !== 'string') throw new Error('unknown format');
    meta = parsed as IdentityMeta;
  } catch (e: unknown) {
    return broken(`has an unreadable identity.json (${describe(e)})`);
  }
  if (keyPem === undefined) return broken('has no private key (svid.key is missing)');
  if (svidPem === undefined) return broken('has no certificate (svid.pem is missing)');
  if (bundlePem === undefined) return broken('has no trust bundle (bundle.pem is missing)');
  const leafDer = pemBlocks(svidPem, 'CERTIFICATE')[0];
  const bundle = pemBlocks(bundlePem, 'CERTIFICATE');
  if (leafDer === undefined) return broken('has an svid.pem without a certificate');
  if (bundle.length === 0) return broken('has a bundle.pem without a certificate');
  let leaf: X509Certificate;
  let usableKeyPem = keyPem;
  let keyIsNext = false;
  try {
    leaf = new X509Certificate(leafDer);
    if (!leaf.checkPrivateKey(createPrivateKey(keyPem))) {
      // A renewal that stopped between writing svid.pem and renaming svid.next.key (renew-host.ts).
      if (nextKeyPem === undefined || !leaf.checkPrivateKey(createPrivateKey(nextKeyPem))) {
        return broken('has a key that does not belong to its certificate');
      }
      usableKeyPem = nextKeyPem;
      keyIsNext = true;
    }
    if (spiffeIdFromCertificate(leafDer) !== meta.spiffeId)
      return broken(`has a certificate that is not for ${meta.spiffeId}`);
    if (!bundle.some((ca) => leaf.verify(new X509Certificate(ca).publicKey))) {
      return broken('has a certificate that its trust bundle does not vouch for');
    }
  } catch (e: unknown) {
    return broken(`is unreadable (${describe(e)})`);
  }
  const expiresAt = Date.parse(leaf.validTo);
  if (expiresAt <= clock.now()) {
    return broken(
      `expired at ${new Date(expiresAt).toISOString()} and a join-token identity cannot be renewed once expired`,
    );
  }
  const issuedAt = Date.parse(leaf.validFrom);
  return {
    kind: 'ok',
    identity: {
      meta,
      certChainPem: svidPem,
      keyPem: usableKeyPem,
      bundlePem,
      keyIsNext,
      issuedAt,
      expiresAt,
    },
  };
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new AgentError('FAILED_PRECONDITION', `cannot read ${path}: ${describe(e)}`, {
      cause: e,
      hint: 'the identity is readable by root only; run as root (or the agent user)',
    });
  }
}
