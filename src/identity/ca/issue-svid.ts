import { randomBytes } from 'node:crypto';
import { parseSpiffeId, spiffeIdFromCertificate } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { describeKey, isEcP256 } from '../crypto/ec-keys.js';
import { toPem } from '../crypto/pem.js';
import { EC_P256, useNodeCrypto, x509 } from '../crypto/x509-provider.js';
import { parseAgentCsr } from './agent-csr.js';
import type { IssuedSvid, MeshCa } from './mesh-ca.js';

export interface IssueSvidOptions {
  readonly spiffeId: string;
  /** Lifetime; capped at the CA's own expiry. */
  readonly ttlMs: number;
  readonly clock?: Clock;
}

/** The key to certify: a SubjectPublicKeyInfo (DER), or an agent's PKCS#10 CSR (DER), checked first. */
export type SvidSubjectKey = { readonly publicKeySpki: Uint8Array } | { readonly csrDer: Uint8Array };

/** Leaves start a minute in the past so a peer whose clock is a little behind accepts them. */
const BACKDATE_MS = 60_000;

/**
 * Signs an X509-SVID leaf: exactly one URI SAN, cA=false, digitalSignature (+keyAgreement) only,
 * EKU serverAuth+clientAuth, a random 128-bit serial. The result is checked against the same SVID
 * rules our peers apply (api/grpc svid.ts) before it is returned.
 */
export async function issueSvid(ca: MeshCa, options: IssueSvidOptions & SvidSubjectKey): Promise<IssuedSvid> {
  useNodeCrypto();
  const id = parseSpiffeId(options.spiffeId);
  if (id.trustDomain !== ca.trustDomain) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `${options.spiffeId} is not in this mesh's trust domain ${ca.trustDomain}`,
      { hint: `use spiffe://${ca.trustDomain}/<path>` },
    );
  }
  if (!Number.isFinite(options.ttlMs) || options.ttlMs <= 0) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `SVID lifetime must be a positive number of ms, got ${options.ttlMs}`,
    );
  }
  const spki =
    'csrDer' in options ? (await parseAgentCsr(options.csrDer)).publicKeySpki : options.publicKeySpki;
  if (!isEcP256(spki)) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `the key to certify is ${describeKey(spki)}; SVIDs of this mesh use EC P-256 keys`,
    );
  }
  const now = (options.clock ?? systemClock).now();
  const notBefore = now - BACKDATE_MS;
  const notAfter = Math.min(now + options.ttlMs, ca.notAfter);
  const serial = randomSerial();
  const caCert = new x509.X509Certificate(ca.certDer);
  let cert: x509.X509Certificate;
  try {
    cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial,
      subject: 'O=nsm-agent',
      issuer: caCert.subject,
      notBefore: new Date(notBefore),
      notAfter: new Date(notAfter),
      publicKey: spki,
      signingKey: ca.keys.privateKey,
      signingAlgorithm: EC_P256,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(
          x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement,
          true,
        ),
        new x509.ExtendedKeyUsageExtension([
          x509.ExtendedKeyUsage.serverAuth,
          x509.ExtendedKeyUsage.clientAuth,
        ]),
        await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
        await x509.SubjectKeyIdentifierExtension.create(spki),
        new x509.SubjectAlternativeNameExtension([{ type: 'url', value: id.id }], true),
      ],
    });
  } catch (e: unknown) {
    throw new AgentError('INTERNAL', `signing the SVID for ${id.id} failed: ${describe(e)}`, { cause: e });
  }
  const certDer = new Uint8Array(cert.rawData);
  // Our own output must pass the checks every peer runs; a failure here is a bug, caught before
  // a host installs a certificate nobody accepts.
  spiffeIdFromCertificate(certDer);
  return {
    spiffeId: id.id,
    certDer,
    certPem: toPem('CERTIFICATE', certDer),
    serial,
    notBefore: cert.notBefore.getTime(),
    notAfter: cert.notAfter.getTime(),
  };
}

/** 16 random bytes, positive (top bit clear) and without a leading zero byte, as hex. */
export function randomSerial(): string {
  const bytes = randomBytes(16);
  bytes[0] = ((bytes[0] ?? 0) & 0x7f) | 0x40;
  return bytes.toString('hex');
}
