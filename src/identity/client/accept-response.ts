import { X509Certificate } from 'node:crypto';
import { parseSpiffeId, spiffeIdFromCertificate } from '../../api/grpc/index.js';
import type { EnrolResponse } from '../../api/index.js';
import { timestampToMs } from '../../api/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { spkiSha256 } from '../crypto/ec-keys.js';
import { certificatesPem } from '../crypto/pem.js';

/** A server answer the agent has checked and can install. */
export interface AcceptedSvid {
  readonly spiffeId: string;
  readonly hostId: string;
  readonly trustDomain: string;
  readonly certChainPem: string;
  readonly bundlePem: string;
  readonly expiresAt: number;
}

/**
 * Checks an EnrolResponse before anything is installed: the leaf is a valid SVID for the SPIFFE ID
 * the server names, certifies *our* key, chains to a CA of the bundle, and the bundle still holds
 * the CA we trust (`trustedCaDer`), so a server cannot swap the mesh's root under us.
 */
export function acceptResponse(
  res: EnrolResponse,
  ourSpki: Uint8Array,
  trustedCaDer: Uint8Array,
  expected?: { readonly spiffeId: string },
): AcceptedSvid {
  const bad = (why: string, cause?: unknown): AgentError =>
    new AgentError('INTERNAL', `the control server sent an unusable SVID: ${why}`, {
      cause,
      hint: 'nothing was installed; report this to the mesh operator (server and agent versions may not match)',
    });
  const leafDer = res.svidChainDer[0];
  if (leafDer === undefined) throw bad('the certificate chain is empty');
  if (res.trustBundleDer.length === 0) throw bad('the trust bundle is empty');
  const trustedPin = Buffer.from(spkiSha256(spkiOf(trustedCaDer)));
  if (!res.trustBundleDer.some((ca) => Buffer.from(spkiSha256(spkiOf(ca))).equals(trustedPin))) {
    throw bad('the trust bundle does not contain the CA this host trusts');
  }
  let leaf: X509Certificate;
  let id: string;
  try {
    leaf = new X509Certificate(leafDer);
    id = spiffeIdFromCertificate(leafDer);
  } catch (e: unknown) {
    throw bad(describe(e), e);
  }
  if (id !== res.spiffeId) throw bad(`the certificate names ${id}, the response ${res.spiffeId}`);
  if (expected && id !== expected.spiffeId) throw bad(`it is for ${id}, this host is ${expected.spiffeId}`);
  const { trustDomain, path } = parseSpiffeId(id);
  if (path !== `/agent/${res.hostId}`) throw bad(`${id} is not the identity of host ${res.hostId}`);
  if (!Buffer.from(spkiOf(leafDer)).equals(Buffer.from(ourSpki))) {
    throw bad('it certifies a different key than the one this host sent');
  }
  if (!leaf.verify(new X509Certificate(trustedCaDer).publicKey)) throw bad('it is not signed by the mesh CA');
  return {
    spiffeId: id,
    hostId: res.hostId,
    trustDomain,
    certChainPem: certificatesPem(res.svidChainDer),
    bundlePem: certificatesPem(res.trustBundleDer),
    expiresAt: res.expiresAt ? timestampToMs(res.expiresAt) : Date.parse(leaf.validTo),
  };
}

function spkiOf(certDer: Uint8Array): Uint8Array {
  return new Uint8Array(new X509Certificate(certDer).publicKey.export({ type: 'spki', format: 'der' }));
}
