// A test PKI shaped like a SPIFFE mesh (EC P-256, as DESIGN §5): a CA per trust domain and leaf
// SVIDs from it, plus the malformed variants X509-SVID §5.2 says peers must refuse (reliability R7).
// Everything comes back as PEM, ready for serverCredentials/clientCredentials or Node's tls.
// @peculiar/x509 needs the Reflect metadata polyfill before it is evaluated.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

export interface TestCa {
  readonly trustDomain: string;
  readonly certPem: string;
  readonly cert: x509.X509Certificate;
  readonly keys: webcrypto.CryptoKeyPair;
}

export interface TestSvid {
  /** The single URI SAN, or the first one of a malformed variant. */
  readonly spiffeId: string;
  /** The leaf alone. */
  readonly certPem: string;
  /** What a server or client presents: the leaf (the CA is in the bundle, not the chain). */
  readonly chainPem: string;
  /** PKCS#8 PEM. */
  readonly keyPem: string;
  /** The leaf's DER, for parser-level tests. */
  readonly der: Uint8Array;
}

export interface SvidOptions {
  /** URI SANs; defaults to [spiffeId]. More than one makes an invalid SVID. */
  readonly uriSans?: readonly string[];
  /** Sets cA=true on the leaf (invalid for an SVID). */
  readonly isCa?: boolean;
  /** Adds keyCertSign to the leaf's key usage (invalid for an SVID). */
  readonly keyCertSign?: boolean;
  readonly notBefore?: Date;
  readonly notAfter?: Date;
}

function useWebCrypto(): void {
  // Set on first use, not at import: tests that only import types must not touch globals.
  x509.cryptoProvider.set(webcrypto);
}

function newKeys(): Promise<webcrypto.CryptoKeyPair> {
  return webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
}

async function keyPem(key: webcrypto.CryptoKey): Promise<string> {
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', key));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  return `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** A self-signed root CA for `trustDomain` (SPIFFE CA certs carry the trust domain as URI SAN). */
export async function createTestCa(trustDomain = 'mesh.test'): Promise<TestCa> {
  useWebCrypto();
  const keys = await newKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    name: `CN=test CA ${trustDomain}`,
    keys,
    signingAlgorithm: ALG,
    notBefore: new Date(now - MINUTE),
    notAfter: new Date(now + DAY),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${trustDomain}` }]),
    ],
  });
  return { trustDomain, certPem: cert.toString('pem') + '\n', cert, keys };
}

/** A leaf SVID signed by `ca`; the options make the malformed variants. */
export async function issueSvid(ca: TestCa, spiffeId: string, options: SvidOptions = {}): Promise<TestSvid> {
  useWebCrypto();
  const keys = await newKeys();
  const now = Date.now();
  let usages = x509.KeyUsageFlags.digitalSignature;
  if (options.keyCertSign === true) usages |= x509.KeyUsageFlags.keyCertSign;
  const cert = await x509.X509CertificateGenerator.create({
    subject: 'O=SPIFFE',
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ALG,
    notBefore: options.notBefore ?? new Date(now - MINUTE),
    notAfter: options.notAfter ?? new Date(now + DAY),
    extensions: [
      new x509.BasicConstraintsExtension(options.isCa ?? false, undefined, true),
      new x509.KeyUsagesExtension(usages, true),
      new x509.ExtendedKeyUsageExtension([
        x509.ExtendedKeyUsage.serverAuth,
        x509.ExtendedKeyUsage.clientAuth,
      ]),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      new x509.SubjectAlternativeNameExtension(
        (options.uriSans ?? [spiffeId]).map((value) => ({ type: 'url' as const, value })),
      ),
    ],
  });
  const certPem = cert.toString('pem') + '\n';
  return {
    spiffeId,
    certPem,
    chainPem: certPem,
    keyPem: await keyPem(keys.privateKey),
    der: new Uint8Array(cert.rawData),
  };
}

/** The malformed SVIDs a peer must refuse, each signed by `ca` so only the SVID rules catch them. */
export const badSvids = {
  twoUriSans: (ca: TestCa, spiffeId: string): Promise<TestSvid> =>
    issueSvid(ca, spiffeId, { uriSans: [spiffeId, `${spiffeId}-second`] }),
  caLeaf: (ca: TestCa, spiffeId: string): Promise<TestSvid> => issueSvid(ca, spiffeId, { isCa: true }),
  keyCertSign: (ca: TestCa, spiffeId: string): Promise<TestSvid> =>
    issueSvid(ca, spiffeId, { keyCertSign: true }),
  /** Signed by `ca` but naming another trust domain. */
  otherTrustDomain: (ca: TestCa, path: string): Promise<TestSvid> =>
    issueSvid(ca, `spiffe://other.${ca.trustDomain}${path}`),
  notSpiffe: (ca: TestCa): Promise<TestSvid> => issueSvid(ca, 'https://example.com/agent'),
  emptyPath: (ca: TestCa): Promise<TestSvid> => issueSvid(ca, `spiffe://${ca.trustDomain}`),
  expired: (ca: TestCa, spiffeId: string): Promise<TestSvid> =>
    issueSvid(ca, spiffeId, {
      notBefore: new Date(Date.now() - 2 * DAY),
      notAfter: new Date(Date.now() - DAY),
    }),
} as const;
