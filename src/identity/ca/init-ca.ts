import { lstat, mkdir } from 'node:fs/promises';
import { parseSpiffeId } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { systemClock } from '../../host/index.js';
import type { Clock } from '../../host/index.js';
import { generateEcKeyPair, spkiSha256 } from '../crypto/ec-keys.js';
import { toPem } from '../crypto/pem.js';
import { EC_P256, useNodeCrypto, x509 } from '../crypto/x509-provider.js';
import { PUBLIC_FILE_MODE, SECRET_FILE_MODE, writeFileAtomic } from '../../host/atomic-write.js';
import { issueSvid, randomSerial } from './issue-svid.js';
import { caFiles, serverSpiffeId } from './mesh-ca.js';
import type { MeshCa, ServerPki } from './mesh-ca.js';
import { trustDomainNameConstraints } from './name-constraints.js';

export interface InitCaOptions {
  /** e.g. `mesh.example` (a bare trust domain, without spiffe://). */
  readonly trustDomain: string;
  readonly dataDir: string;
  /** CA lifetime; default 10 years. */
  readonly caTtlMs?: number;
  /** Server SVID lifetime; default 1 year. */
  readonly serverSvidTtlMs?: number;
  readonly clock?: Clock;
}

const YEAR_MS = 365 * 24 * 3600_000;
export const DEFAULT_CA_TTL_MS = 10 * YEAR_MS;
export const DEFAULT_SERVER_SVID_TTL_MS = YEAR_MS;

/**
 * `server init`: creates the mesh CA (EC P-256 self-signed root, name-constrained to the trust
 * domain) and the server's SVID `spiffe://<td>/server` under `<dataDir>/ca/`. Refuses to touch a
 * data dir that already has a CA: replacing it would orphan every enrolled host.
 */
export async function initCa(options: InitCaOptions): Promise<ServerPki> {
  useNodeCrypto();
  const td = checkTrustDomain(options.trustDomain);
  const { dataDir } = options;
  if (!(await exists(caFiles.caCert(dataDir))) && (await exists(caFiles.caKey(dataDir)))) {
    // ca.pem is written last: a key without it is an init that never finished, so no host can
    // depend on this CA yet and starting over is safe.
    throw new AgentError(
      'FAILED_PRECONDITION',
      `an earlier \`server init\` in ${caFiles.dir(dataDir)} did not finish`,
      {
        hint: `no host can be using that CA yet: remove ${caFiles.dir(dataDir)} and run server init again`,
      },
    );
  }
  for (const path of [caFiles.caCert(dataDir), caFiles.caKey(dataDir)]) {
    if (await exists(path)) {
      throw new AgentError(
        'ALREADY_EXISTS',
        `a mesh CA already exists in ${caFiles.dir(dataDir)} (${path})`,
        {
          hint: 'run `nsm-agent server run` to use it; to start a new mesh, pick an empty --data-dir (replacing the CA would cut off every enrolled host)',
        },
      );
    }
  }
  const clock = options.clock ?? systemClock;
  const now = clock.now();
  const keys = await generateEcKeyPair();
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=nsm-agent mesh CA ${td}, O=nsm-agent`,
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: EC_P256,
    notBefore: new Date(now - 60_000),
    notAfter: new Date(now + (options.caTtlMs ?? DEFAULT_CA_TTL_MS)),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
      // X509-SVID §3: a signing certificate may carry its trust domain as its URI SAN.
      new x509.SubjectAlternativeNameExtension([{ type: 'url', value: `spiffe://${td}` }]),
      trustDomainNameConstraints(td),
    ],
  });
  const certDer = new Uint8Array(cert.rawData);
  const certPem = toPem('CERTIFICATE', certDer);
  const ca: MeshCa = {
    trustDomain: td,
    certDer,
    certPem,
    notAfter: cert.notAfter.getTime(),
    keys,
    pin: spkiSha256(keys.spki),
    bundleDer: [certDer],
    bundlePem: certPem,
  };
  const serverKeys = await generateEcKeyPair();
  const svid = await issueSvid(ca, {
    spiffeId: serverSpiffeId(td),
    publicKeySpki: serverKeys.spki,
    ttlMs: options.serverSvidTtlMs ?? DEFAULT_SERVER_SVID_TTL_MS,
    clock,
  });

  try {
    await mkdir(caFiles.dir(dataDir), { recursive: true, mode: 0o700 });
    await writeFileAtomic(caFiles.caKey(dataDir), keys.privateKeyPem, SECRET_FILE_MODE);
    await writeFileAtomic(caFiles.serverKey(dataDir), serverKeys.privateKeyPem, SECRET_FILE_MODE);
    await writeFileAtomic(caFiles.serverCert(dataDir), svid.certPem, PUBLIC_FILE_MODE);
    await writeFileAtomic(caFiles.bundle(dataDir), certPem, PUBLIC_FILE_MODE);
    // Last: loadCa treats a data dir without ca.pem as "no CA" and one with ca.key but no ca.pem
    // as an interrupted init.
    await writeFileAtomic(caFiles.caCert(dataDir), certPem, PUBLIC_FILE_MODE);
  } catch (e: unknown) {
    throw new AgentError(
      'FAILED_PRECONDITION',
      `cannot write the mesh CA to ${caFiles.dir(dataDir)}: ${describe(e)}`,
      {
        cause: e,
        hint: 'check that the data dir is writable (server init runs as root by default), then run it again on an empty dir',
      },
    );
  }
  return {
    ca,
    server: { ...svid, keyPem: serverKeys.privateKeyPem },
    serverTlsChainPem: svid.certPem + certPem,
  };
}

function checkTrustDomain(td: string): string {
  if (td.startsWith('spiffe://')) {
    throw new AgentError('INVALID_ARGUMENT', `trust domain "${td}" should be given without spiffe://`, {
      hint: `use --trust-domain ${td.slice('spiffe://'.length).replace(/\/.*$/, '')}`,
    });
  }
  if (td.length > 255) throw new AgentError('INVALID_ARGUMENT', 'a trust domain is at most 255 characters');
  // parseSpiffeId holds the SPIFFE character rules for trust domains.
  return parseSpiffeId(`spiffe://${td}/server`).trustDomain;
}

async function exists(path: string): Promise<boolean> {
  try {
    await lstat(path);
    return true;
  } catch (e: unknown) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return false;
    throw e;
  }
}
