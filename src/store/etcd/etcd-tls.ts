import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { checkServerIdentity } from 'node:tls';
import type { PeerCertificate } from 'node:tls';
import { ChannelCredentials } from '@grpc/grpc-js';
import { AgentError, describe } from '../../errors/index.js';
import type { ClientTlsCredentials } from '../../api/grpc/index.js';
import type { EtcdEndpoint } from './etcd-url.js';

/**
 * Where the TLS material for `etcds://` lives. Files, never inline secrets or environment
 * variables; they are read when the store opens.
 */
export interface EtcdTlsFiles {
  /** PEM file with the CA certificate(s) that signed etcd's server certificates (`--store-ca`). */
  readonly caFile: string;
  /** PEM client certificate for etcd's `--client-cert-auth` (`--store-cert`); with keyFile or not at all. */
  readonly certFile?: string;
  /** PEM private key of certFile (`--store-key`). */
  readonly keyFile?: string;
}

/** The TLS material, read and checked; what both gRPC and the failure diagnosis hand to TLS. */
export interface EtcdTlsMaterial {
  readonly files: EtcdTlsFiles;
  readonly ca: Buffer;
  readonly client?: { readonly cert: Buffer; readonly key: Buffer };
}

const CERT_BLOCK_RE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;
const CLIENT_AUTH_OID = '1.3.6.1.5.5.7.3.2';
const CLIENT_HINT =
  'use a certificate signed by the CA in etcd’s --trusted-ca-file, with clientAuth usage, and its own key';

/**
 * Reads and checks the files, so that a wrong path or a mismatched pair is a clear CONFIG_INVALID
 * at start rather than handshake failures later. `now` decides whether the client certificate is
 * in its validity period.
 */
export async function loadEtcdTls(files: EtcdTlsFiles, now: number): Promise<EtcdTlsMaterial> {
  const caPem = await readPem(
    files.caFile,
    'CA file',
    '--store-ca',
    'the PEM file of the CA that signed etcd’s server certificate',
  );
  const caBlocks = caPem.match(CERT_BLOCK_RE) ?? [];
  // Without roots TLS would fall back to the public CA store: any public CA could vouch for "etcd".
  if (caBlocks.length === 0) {
    throw new AgentError(
      'CONFIG_INVALID',
      `the etcd CA file ${files.caFile} (--store-ca) holds no PEM certificate`,
      {
        hint: 'point --store-ca at the CA certificate (PEM, "-----BEGIN CERTIFICATE-----") that signed etcd’s server certificate',
      },
    );
  }
  for (const block of caBlocks) {
    try {
      new X509Certificate(block);
    } catch (e: unknown) {
      throw new AgentError(
        'CONFIG_INVALID',
        `the etcd CA file ${files.caFile} (--store-ca) holds a certificate that does not parse: ${describe(e)}`,
        {
          hint: 'point --store-ca at the PEM CA certificate that signed etcd’s server certificate',
          cause: e,
        },
      );
    }
  }
  const ca = Buffer.from(caBlocks.join('\n') + '\n');
  const { certFile, keyFile } = files;
  if (certFile === undefined && keyFile === undefined) return { files, ca };
  if (certFile === undefined || keyFile === undefined) {
    throw new AgentError(
      'CONFIG_INVALID',
      `etcd client TLS needs both --store-cert and --store-key; only ${certFile === undefined ? '--store-key' : '--store-cert'} was given`,
      {
        hint: 'pass the client certificate and its key together, or neither when etcd does not use --client-cert-auth',
      },
    );
  }
  const certPem = await readPem(
    certFile,
    'client certificate',
    '--store-cert',
    'the PEM client certificate for etcd',
  );
  const keyPem = await readPem(keyFile, 'client key', '--store-key', 'the PEM private key of --store-cert');
  const leafPem = certPem.match(CERT_BLOCK_RE)?.[0];
  let leaf: X509Certificate;
  try {
    if (leafPem === undefined) throw new Error('no "-----BEGIN CERTIFICATE-----" block');
    leaf = new X509Certificate(leafPem);
  } catch (e: unknown) {
    throw new AgentError(
      'CONFIG_INVALID',
      `the etcd client certificate ${certFile} (--store-cert) does not parse: ${describe(e)}`,
      {
        hint: CLIENT_HINT,
        cause: e,
      },
    );
  }
  let matches: boolean;
  try {
    matches = leaf.checkPrivateKey(createPrivateKey(keyPem));
  } catch (e: unknown) {
    // describe() of a key parse error never includes key material.
    throw new AgentError(
      'CONFIG_INVALID',
      `the etcd client key ${keyFile} (--store-key) does not parse: ${describe(e)}`,
      {
        hint: 'pass the PEM private key that belongs to --store-cert',
        cause: e,
      },
    );
  }
  if (!matches) {
    throw new AgentError(
      'CONFIG_INVALID',
      `the etcd client key ${keyFile} (--store-key) does not belong to the certificate ${certFile} (--store-cert)`,
      {
        hint: 'pass the key that was generated with that certificate (compare `openssl x509 -pubkey` of both)',
      },
    );
  }
  // Node's types say string[], but a certificate without the extension gives undefined (any use).
  const eku = leaf.keyUsage as readonly string[] | undefined;
  if (eku !== undefined && !eku.includes(CLIENT_AUTH_OID)) {
    throw new AgentError(
      'CONFIG_INVALID',
      `the etcd client certificate ${certFile} (--store-cert) does not allow client authentication (extended key usage: ${eku.join(', ')}), so etcd would refuse it`,
      { hint: CLIENT_HINT },
    );
  }
  if (Date.parse(leaf.validTo) <= now || Date.parse(leaf.validFrom) > now) {
    throw new AgentError(
      'CONFIG_INVALID',
      `the etcd client certificate ${certFile} (--store-cert) is valid only from ${leaf.validFrom} to ${leaf.validTo}`,
      { hint: 'renew the client certificate (and its key) and restart the server' },
    );
  }
  return { files, ca, client: { cert: Buffer.from(certPem), key: Buffer.from(keyPem) } };
}

/**
 * etcd's certificates name their members by DNS and IP SANs, so the server check is the ordinary
 * hostname check against the endpoint as written in the URL. (dial() may send another TLS server
 * name for IP endpoints; this check ignores it and uses the endpoint's host.)
 */
export function checkEtcdServerName(endpoint: EtcdEndpoint, cert: PeerCertificate): Error | undefined {
  return checkServerIdentity(endpoint.grpc.host, cert);
}

/** gRPC credentials for one endpoint: its own hostname check, the CA as the only roots. */
export function etcdChannelCredentials(tls: EtcdTlsMaterial, endpoint: EtcdEndpoint): ClientTlsCredentials {
  const grpc = ChannelCredentials.createSsl(tls.ca, tls.client?.key ?? null, tls.client?.cert ?? null, {
    checkServerIdentity: (_host, cert) => checkEtcdServerName(endpoint, cert),
  });
  return { kind: 'tls', grpc };
}

async function readPem(path: string, what: string, flag: string, expected: string): Promise<string> {
  try {
    return await readFile(path, 'utf8');
  } catch (e: unknown) {
    const code = (e as { code?: unknown }).code;
    const why = code === 'ENOENT' ? 'no such file' : code === 'EACCES' ? 'permission denied' : describe(e);
    throw new AgentError('CONFIG_INVALID', `cannot read the etcd ${what} ${path} (${flag}): ${why}`, {
      hint: `${flag} names ${expected}; check the path and that this user may read it`,
      cause: e,
    });
  }
}
