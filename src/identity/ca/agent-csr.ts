import { AgentError, describe } from '../../errors/index.js';
import { describeKey, isEcP256 } from '../crypto/ec-keys.js';
import { useNodeCrypto, x509 } from '../crypto/x509-provider.js';

/** What the CA takes from a host's CSR: only the key. Subject and requested extensions are ignored. */
export interface AgentCsr {
  readonly publicKeySpki: Uint8Array;
}

/** A CSR for a P-256 key with a subject is a few hundred bytes; anything near this is not ours. */
const SAN_OID = '2.5.29.17';

export const MAX_CSR_BYTES = 16 * 1024;

const CSR_HINT =
  'send a DER PKCS#10 request for an EC P-256 key, signed with that key, without subject alternative names';

/**
 * Checks a host's PKCS#10 CSR (reliability R7): it parses, its key is EC P-256, it requests no
 * subject alternative names (the server assigns the SPIFFE ID), and it is signed by its own key
 * (proof of possession). Every refusal is INVALID_ARGUMENT saying which rule failed.
 */
export async function parseAgentCsr(der: Uint8Array): Promise<AgentCsr> {
  useNodeCrypto();
  const bad = (why: string, cause?: unknown): AgentError =>
    new AgentError('INVALID_ARGUMENT', `CSR refused: ${why}`, { hint: CSR_HINT, cause });
  if (der.length === 0) throw bad('it is empty');
  if (der.length > MAX_CSR_BYTES)
    throw bad(`it is ${der.length} bytes, more than the ${MAX_CSR_BYTES} allowed`);
  let csr: x509.Pkcs10CertificateRequest;
  let spki: Uint8Array;
  let sanText: string[];
  try {
    csr = new x509.Pkcs10CertificateRequest(der);
    spki = new Uint8Array(csr.publicKey.rawData);
    sanText = csr.extensions
      .filter((e) => e.type === SAN_OID)
      .flatMap((e) =>
        e instanceof x509.SubjectAlternativeNameExtension
          ? e.names.items.map((n) => `${n.type} ${n.value}`)
          : ['an unreadable subjectAltName extension'],
      );
  } catch (e: unknown) {
    throw bad(`it is not a DER PKCS#10 certificate request (${describe(e)})`, e);
  }
  if (!isEcP256(spki))
    throw bad(`its key is ${describeKey(spki)}, but SVIDs of this mesh need an EC P-256 key`);
  if (sanText.length > 0) {
    throw bad(
      `it requests subject alternative names (${sanText.join(', ')}); the server assigns the SPIFFE ID itself`,
    );
  }
  let valid: boolean;
  try {
    valid = await csr.verify();
  } catch (e: unknown) {
    throw bad(`its signature cannot be checked (${describe(e)})`, e);
  }
  if (!valid) throw bad('its signature does not verify with the key it carries');
  return { publicKeySpki: spki };
}
