import { useNodeCrypto, EC_P256, x509 } from './x509-provider.js';
import type { EcKeyPair } from './ec-keys.js';

/**
 * The CSR an agent sends: its key, signed by itself, no SANs (the server names the host). The
 * subject is informational only; the server ignores it.
 */
export async function createAgentCsr(keys: EcKeyPair, subject = 'O=nsm-agent'): Promise<Uint8Array> {
  useNodeCrypto();
  const csr = await x509.Pkcs10CertificateRequestGenerator.create({
    name: subject,
    keys: { privateKey: keys.privateKey, publicKey: keys.publicKey },
    signingAlgorithm: EC_P256,
  });
  return new Uint8Array(csr.rawData);
}
