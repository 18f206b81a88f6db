import { x509 } from '../crypto/x509-provider.js';

const NAME_CONSTRAINTS_OID = '2.5.29.30';

/**
 * A critical NameConstraints extension that permits only URIs whose host is the trust domain
 * (RFC 5280 §4.2.1.10: a URI constraint names the host part; `spiffe://<td>/…` has host <td>).
 * With it, TLS stacks that enforce name constraints (OpenSSL, so Node) refuse any leaf from this
 * CA that names another trust domain, even if our own issuing code had a bug.
 * @peculiar/x509 has no class for it, so the DER is built here; it is four nested TLVs.
 */
export function trustDomainNameConstraints(trustDomain: string): x509.Extension {
  const uri = tlv(0x86, Buffer.from(trustDomain, 'ascii')); // [6] IMPLICIT IA5String
  const subtree = tlv(0x30, uri); // GeneralSubtree { base }
  const permitted = tlv(0xa0, subtree); // [0] permittedSubtrees
  const constraints = tlv(0x30, permitted); // NameConstraints
  return new x509.Extension(NAME_CONSTRAINTS_OID, true, constraints);
}

function tlv(tag: number, value: Uint8Array): Uint8Array {
  return new Uint8Array(Buffer.concat([Buffer.from([tag]), derLength(value.length), value]));
}

function derLength(n: number): Buffer {
  if (n < 0x80) return Buffer.from([n]);
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return Buffer.from([0x80 | bytes.length, ...bytes]);
}
