import { X509Certificate } from 'node:crypto';
import { isIP } from 'node:net';
import { connect } from 'node:tls';
import type { DetailedPeerCertificate } from 'node:tls';
import { parseGrpcUrl } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';
import { formatPin, spkiSha256 } from '../crypto/ec-keys.js';
import { toPem } from '../crypto/pem.js';
import { useNodeCrypto, x509 } from '../crypto/x509-provider.js';

export interface PinnedCa {
  readonly caDer: Uint8Array;
  readonly caPem: string;
  /** From the CA's `spiffe://<td>` URI SAN; undefined if it has none. */
  readonly trustDomain: string | undefined;
}

/**
 * Bootstrap trust (reliability R3): a fresh host knows only the pin (SHA-256 of the CA's
 * SubjectPublicKeyInfo) from its token. This opens one TLS handshake to the server *without*
 * verifying it, looks through the certificates the server sent for the CA with that pin, and
 * returns it. Nothing is sent over this connection. The caller then makes the real, fully
 * verified TLS connection with that CA as the only root — so an impostor who replays the public
 * CA certificate still fails there, lacking a leaf the CA signed. No public CA store, and no
 * fallback: a server without the pinned CA is refused, naming what it presented.
 */
export async function fetchPinnedCa(
  serverUrl: string,
  pin: Uint8Array,
  timeoutMs = 15_000,
): Promise<PinnedCa> {
  const url = parseGrpcUrl(serverUrl);
  if (url.kind !== 'tcp' || url.host === '' || url.port === 0) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `the token's server URL ${serverUrl} is not a tcp://host:port to dial`,
    );
  }
  const chain = await handshakeChain(url.host, url.port, serverUrl, timeoutMs);
  const presented: string[] = [];
  for (const der of chain) {
    const cert = new X509Certificate(der);
    const certPin = spkiSha256(new Uint8Array(cert.publicKey.export({ type: 'spki', format: 'der' })));
    if (Buffer.from(certPin).equals(Buffer.from(pin))) {
      if (!cert.ca) {
        throw mismatch(
          serverUrl,
          pin,
          `the certificate with the pinned key is not a CA (${cert.subject.replace(/\n/g, ', ')})`,
        );
      }
      return { caDer: der, caPem: toPem('CERTIFICATE', der), trustDomain: trustDomainOf(cert) };
    }
    presented.push(`${formatPin(certPin)} (${cert.subject.replace(/\n/g, ', ')})`);
  }
  throw mismatch(serverUrl, pin, `it presented ${presented.join('; ') || 'no certificate'}`);
}

function mismatch(serverUrl: string, pin: Uint8Array, detail: string): AgentError {
  return new AgentError(
    'UNAUTHENTICATED',
    `the server at ${serverUrl} does not hold the mesh CA the token pins (${formatPin(pin)}): ${detail}`,
    {
      hint: 'enrolment stopped and nothing was sent; check that the token belongs to this server (a token from another mesh, or a machine in the middle, looks like this)',
    },
  );
}

/** From the DER (Node's subjectAltName string may quote entries, reliability §5.2). */
function trustDomainOf(cert: X509Certificate): string | undefined {
  useNodeCrypto();
  const san = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension);
  const uri = san?.names.items.find((n) => n.type === 'url')?.value;
  return uri === undefined ? undefined : /^spiffe:\/\/([a-z0-9._-]+)$/.exec(uri)?.[1];
}

function handshakeChain(
  host: string,
  port: number,
  serverUrl: string,
  timeoutMs: number,
): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({
      host,
      port,
      // RFC 6066: no IP literals in SNI.
      ...(isIP(host) === 0 ? { servername: host } : {}),
      // Deliberately unverified: the pin check below is the verification of this step.
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(
        new AgentError('DEADLINE_EXCEEDED', `no TLS handshake with ${serverUrl} within ${timeoutMs} ms`, {
          hint: 'check the server URL in the token and that the control server is reachable',
        }),
      );
    }, timeoutMs);
    timer.unref();
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      const chain: Uint8Array[] = [];
      const seen = new Set<string>();
      // Node returns {} when there is no certificate, and a self-signed root is its own issuer.
      let cert: Partial<DetailedPeerCertificate> | undefined = socket.getPeerCertificate(true);
      while (cert?.raw !== undefined && cert.fingerprint256 !== undefined && !seen.has(cert.fingerprint256)) {
        seen.add(cert.fingerprint256);
        chain.push(new Uint8Array(cert.raw));
        cert = cert.issuerCertificate;
      }
      socket.destroy();
      resolve(chain);
    });
    socket.once('error', (e: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(
        new AgentError('UNAVAILABLE', `cannot reach the control server at ${serverUrl}: ${describe(e)}`, {
          cause: e,
          hint: 'check the server URL in the token and that `nsm-agent server run` is running there',
        }),
      );
    });
  });
}
