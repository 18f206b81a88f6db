// Certificates shaped like an etcd deployment's (not SPIFFE): server certificates name the member
// by DNS and IP SANs, client certificates carry clientAuth. Written to files, because etcd and
// `--store-ca/--store-cert/--store-key` take files.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';
import { webcrypto } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createTestCa } from './pki.js';
import type { TestCa } from './pki.js';

const ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY = 24 * 60 * 60_000;

export type { TestCa };

export interface TlsCertOptions {
  readonly dns?: readonly string[];
  readonly ips?: readonly string[];
  /** Which extended key usages the certificate has (default both). */
  readonly usages?: readonly ('server' | 'client')[];
  readonly commonName?: string;
}

export interface TlsCertFiles {
  readonly certFile: string;
  readonly keyFile: string;
}

export function createEtcdCa(name = 'etcd.test'): Promise<TestCa> {
  return createTestCa(name);
}

/** A leaf signed by `ca`, written as `<dir>/<name>.pem` and `<dir>/<name>-key.pem`. */
export async function writeTlsCert(
  ca: TestCa,
  dir: string,
  name: string,
  options: TlsCertOptions = {},
): Promise<TlsCertFiles> {
  x509.cryptoProvider.set(webcrypto);
  const keys = await webcrypto.subtle.generateKey(ALG, true, ['sign', 'verify']);
  const now = Date.now();
  const usages = options.usages ?? ['server', 'client'];
  const sans = [
    ...(options.dns ?? []).map((value) => ({ type: 'dns' as const, value })),
    ...(options.ips ?? []).map((value) => ({ type: 'ip' as const, value })),
  ];
  const cert = await x509.X509CertificateGenerator.create({
    subject: `CN=${options.commonName ?? name}`,
    issuer: ca.cert.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: ALG,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + DAY),
    extensions: [
      new x509.BasicConstraintsExtension(false, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
        true,
      ),
      new x509.ExtendedKeyUsageExtension(
        usages.map((u) =>
          u === 'server' ? x509.ExtendedKeyUsage.serverAuth : x509.ExtendedKeyUsage.clientAuth,
        ),
      ),
      await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
      ...(sans.length > 0 ? [new x509.SubjectAlternativeNameExtension(sans)] : []),
    ],
  });
  const der = Buffer.from(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey));
  const lines = der.toString('base64').match(/.{1,64}/g) ?? [];
  const certFile = join(dir, `${name}.pem`);
  const keyFile = join(dir, `${name}-key.pem`);
  writeFileSync(certFile, cert.toString('pem') + '\n');
  writeFileSync(keyFile, `-----BEGIN PRIVATE KEY-----\n${lines.join('\n')}\n-----END PRIVATE KEY-----\n`, {
    mode: 0o600,
  });
  return { certFile, keyFile };
}

/** Writes the CA certificate to `<dir>/<name>.pem`. */
export function writeCaFile(ca: TestCa, dir: string, name = 'ca'): string {
  const file = join(dir, `${name}.pem`);
  writeFileSync(file, ca.certPem);
  return file;
}
