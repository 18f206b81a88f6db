import { X509Certificate, createPrivateKey } from 'node:crypto';
import { access, readFile } from 'node:fs/promises';
import { spiffeIdFromCertificate } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { importEcKeyPair, spkiSha256 } from '../crypto/ec-keys.js';
import { onePemBlock, toPem } from '../crypto/pem.js';
import { useNodeCrypto, x509 } from '../crypto/x509-provider.js';
import { caFiles, serverSpiffeId } from './mesh-ca.js';
import type { MeshCa, ServerPki } from './mesh-ca.js';

/**
 * `server run`: reads what initCa wrote and checks that it belongs together (keys match their
 * certificates, the server SVID chains to the CA and names `spiffe://<td>/server`). Every failure
 * is FAILED_PRECONDITION naming the file and what to do.
 */
export async function loadCa(dataDir: string): Promise<ServerPki> {
  useNodeCrypto();
  const caPemPath = caFiles.caCert(dataDir);
  const caPemText = await readOrExplain(caPemPath, dataDir);
  const caDer = onePemBlock(caPemText, 'CERTIFICATE', caPemPath);
  const caKeys = await importEcKeyPair(
    await readOrExplain(caFiles.caKey(dataDir), dataDir),
    caFiles.caKey(dataDir),
  );
  const caCert = new x509.X509Certificate(caDer);
  const caSpki = new Uint8Array(caCert.publicKey.rawData);
  if (!Buffer.from(caSpki).equals(Buffer.from(caKeys.spki))) {
    throw broken(dataDir, `${caFiles.caKey(dataDir)} is not the key of ${caPemPath}`);
  }
  const td = trustDomainOf(caCert, caPemPath, dataDir);
  const ca: MeshCa = {
    trustDomain: td,
    certDer: caDer,
    certPem: toPem('CERTIFICATE', caDer),
    notAfter: caCert.notAfter.getTime(),
    keys: caKeys,
    pin: spkiSha256(caSpki),
    bundleDer: [caDer],
    bundlePem: toPem('CERTIFICATE', caDer),
  };

  const serverPath = caFiles.serverCert(dataDir);
  const serverDer = onePemBlock(await readOrExplain(serverPath, dataDir), 'CERTIFICATE', serverPath);
  const serverKeys = await importEcKeyPair(
    await readOrExplain(caFiles.serverKey(dataDir), dataDir),
    caFiles.serverKey(dataDir),
  );
  const server = new X509Certificate(serverDer);
  if (!server.checkPrivateKey(createPrivateKey(serverKeys.privateKeyPem))) {
    throw broken(dataDir, `${caFiles.serverKey(dataDir)} is not the key of ${serverPath}`);
  }
  if (!server.verify(new X509Certificate(caDer).publicKey)) {
    throw broken(dataDir, `${serverPath} was not issued by ${caPemPath}`);
  }
  let id: string;
  try {
    id = spiffeIdFromCertificate(serverDer);
  } catch (e: unknown) {
    throw broken(dataDir, `${serverPath}: ${describe(e)}`);
  }
  if (id !== serverSpiffeId(td))
    throw broken(dataDir, `${serverPath} names ${id}, expected ${serverSpiffeId(td)}`);
  const serverPem = toPem('CERTIFICATE', serverDer);
  return {
    ca,
    server: {
      spiffeId: id,
      certDer: serverDer,
      certPem: serverPem,
      serial: server.serialNumber.toLowerCase(),
      notBefore: Date.parse(server.validFrom),
      notAfter: Date.parse(server.validTo),
      keyPem: serverKeys.privateKeyPem,
    },
    serverTlsChainPem: serverPem + ca.certPem,
  };
}

function trustDomainOf(cert: x509.X509Certificate, path: string, dataDir: string): string {
  const san = cert.getExtension(x509.SubjectAlternativeNameExtension);
  const uri = san?.names.items.find((n) => n.type === 'url')?.value;
  const m = uri === undefined ? null : /^spiffe:\/\/([^/]+)$/.exec(uri);
  if (!m?.[1]) throw broken(dataDir, `${path} does not name its trust domain (URI SAN spiffe://<td>)`);
  return m[1];
}

async function readOrExplain(path: string, dataDir: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e: unknown) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && path === caFiles.caCert(dataDir)) {
      if (await fileExists(caFiles.caKey(dataDir))) {
        throw new AgentError(
          'FAILED_PRECONDITION',
          `an earlier \`server init\` in ${caFiles.dir(dataDir)} did not finish`,
          {
            hint: `no host can be using that CA yet: remove ${caFiles.dir(dataDir)} and run server init again`,
          },
        );
      }
      throw new AgentError('FAILED_PRECONDITION', `no mesh CA in ${caFiles.dir(dataDir)}`, {
        hint: `create one with \`nsm-agent server init --trust-domain <td> --data-dir ${dataDir}\``,
      });
    }
    throw broken(dataDir, `cannot read ${path}: ${describe(e)}`);
  }
}

function broken(dataDir: string, why: string): AgentError {
  return new AgentError('FAILED_PRECONDITION', `the mesh CA in ${caFiles.dir(dataDir)} is unusable: ${why}`, {
    hint: 'restore the data dir from a backup; if `server init` was interrupted, remove the ca/ folder and run it again',
  });
}

async function fileExists(path: string): Promise<boolean> {
  try {
    await access(path);
    return true;
  } catch {
    return false;
  }
}
