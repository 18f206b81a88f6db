import { connect as tcpConnect, isIP } from 'node:net';
import type { Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { AgentError, describe } from '../../errors/index.js';
import { checkEtcdServerName } from './etcd-tls.js';
import type { EtcdTlsMaterial } from './etcd-tls.js';
import type { EtcdEndpoint } from './etcd-url.js';

/** The HTTP/2 client preface and an empty SETTINGS frame: an h2 server answers with its SETTINGS. */
const H2_PREFACE = Buffer.concat([
  Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'),
  Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]),
]);

/** What one connection attempt says about an endpoint: it answers HTTP/2, or why not. */
export type EndpointDiagnosis = { readonly ok: true } | { readonly ok: false; readonly error: AgentError };

/**
 * grpc-js reports a failed connection only as "No connection established" or a deadline; this
 * connects once by hand, the way gRPC would, to name the cause: nothing listening, the server's
 * certificate not signed by our CA or not for this name, etcd wanting (or refusing) our client
 * certificate, TLS on one side only. Bounded by `timeoutMs`; never throws.
 */
export function diagnoseEtcdEndpoint(
  endpoint: EtcdEndpoint,
  tls: EtcdTlsMaterial | undefined,
  timeoutMs: number,
): Promise<EndpointDiagnosis> {
  const { host, port } = endpoint.grpc;
  return new Promise((resolve) => {
    let socket: Socket;
    let done = false;
    let handshaken = tls === undefined;
    let connected = false;
    const finish = (d: EndpointDiagnosis): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(d);
    };
    const fail = (e: AgentError): void => {
      finish({ ok: false, error: e });
    };
    const timer = setTimeout(() => {
      fail(
        new AgentError('UNAVAILABLE', `etcd at ${endpoint.text} did not answer within ${timeoutMs} ms`, {
          hint: 'check that etcd runs there and that no firewall drops the connection',
        }),
      );
    }, timeoutMs);
    if (tls === undefined) {
      socket = tcpConnect({ host, port });
      socket.once('connect', () => socket.write(H2_PREFACE));
    } else {
      socket = tlsConnect({
        host,
        port,
        ca: tls.ca,
        ...(tls.client ? { cert: tls.client.cert, key: tls.client.key } : {}),
        // SNI may not carry an IP literal (RFC 6066).
        ...(isIP(host) === 0 ? { servername: host } : {}),
        ALPNProtocols: ['h2'],
        checkServerIdentity: (_h, cert) => checkEtcdServerName(endpoint, cert),
      });
      socket.once('secureConnect', () => {
        handshaken = true;
        socket.write(H2_PREFACE);
      });
    }
    socket.once('connect', () => {
      connected = true;
    });
    socket.once('data', (d: Buffer) => {
      // An HTTP/2 frame header: 3 bytes length, then the type; SETTINGS is 4.
      if (d.length >= 4 && d[3] === 4) {
        finish({ ok: true });
        return;
      }
      fail(notGrpc(endpoint, tls !== undefined));
    });
    socket.once('error', (e: Error) => {
      fail(classify(e, endpoint, tls, { connected, handshaken }));
    });
    socket.once('close', () => {
      // etcd (Go TLS 1.3) checks the client certificate after our side of the handshake is done,
      // so a refusal can arrive as a close rather than an alert.
      if (tls !== undefined && handshaken && tls.client === undefined) {
        fail(clientCertRequired(endpoint, undefined));
        return;
      }
      if (tls !== undefined && connected && !handshaken) {
        fail(noTls(endpoint, undefined));
        return;
      }
      fail(notGrpc(endpoint, tls !== undefined));
    });
  });
}

const CHAIN_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'CERT_SIGNATURE_FAILURE',
  'CERT_UNTRUSTED',
]);
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT', 'ECONNRESET']);

function classify(
  e: Error,
  endpoint: EtcdEndpoint,
  tls: EtcdTlsMaterial | undefined,
  progress: { readonly connected: boolean; readonly handshaken: boolean },
): AgentError {
  const { connected, handshaken } = progress;
  const raw = (e as { code?: unknown }).code;
  const code = typeof raw === 'string' ? raw : '';
  const at = endpoint.text;
  if (code === 'ECONNREFUSED') {
    return new AgentError('UNAVAILABLE', `nothing accepts connections at ${at} (connection refused)`, {
      hint: 'check that etcd runs there and that its --listen-client-urls includes this address',
      cause: e,
    });
  }
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') {
    return new AgentError('UNAVAILABLE', `cannot resolve the etcd host ${endpoint.grpc.host}`, {
      hint: 'check the host name in --store and this host’s DNS',
      cause: e,
    });
  }
  // A server that does not speak TLS drops our ClientHello: connected, then reset before the handshake.
  if (tls !== undefined && connected && !handshaken && code === 'ECONNRESET') return noTls(endpoint, e);
  if (UNREACHABLE.has(code) && !(tls && handshaken)) {
    return new AgentError('UNAVAILABLE', `etcd at ${at} is unreachable: ${describe(e)}`, {
      hint: 'check that etcd runs there and that the network path (routes, firewall) allows it',
      cause: e,
    });
  }
  if (tls === undefined) return notGrpc(endpoint, false, e);
  const caFile = tls.files.caFile;
  if (CHAIN_ERRORS.has(code)) {
    return new AgentError(
      'CONFIG_INVALID',
      `etcd’s server certificate at ${at} is not signed by the CA in ${caFile} (--store-ca): ${describe(e)}`,
      {
        hint: 'point --store-ca at the CA that issued etcd’s --cert-file (with any intermediates in etcd’s certificate file)',
        cause: e,
      },
    );
  }
  if (code === 'ERR_TLS_CERT_ALTNAME_INVALID') {
    return new AgentError(
      'CONFIG_INVALID',
      `etcd’s server certificate at ${at} is not issued for ${endpoint.grpc.host}: ${describe(e)}`,
      {
        hint: 'connect by a name or IP that the certificate lists as a subject alternative name, or reissue etcd’s certificate with this one',
        cause: e,
      },
    );
  }
  if (code === 'CERT_HAS_EXPIRED' || code === 'CERT_NOT_YET_VALID') {
    return new AgentError(
      'CONFIG_INVALID',
      `etcd’s server certificate at ${at} is not valid now: ${describe(e)}`,
      {
        hint: 'renew etcd’s server certificate (or check this host’s clock)',
        cause: e,
      },
    );
  }
  if (
    /ALERT_CERTIFICATE_REQUIRED/.test(code) ||
    (tls.client === undefined && /ALERT_(BAD_CERTIFICATE|HANDSHAKE_FAILURE)/.test(code))
  ) {
    return clientCertRequired(endpoint, e);
  }
  if (
    tls.client !== undefined &&
    /ALERT_(BAD_CERTIFICATE|UNKNOWN_CA|CERTIFICATE_UNKNOWN|UNSUPPORTED_CERTIFICATE|CERTIFICATE_EXPIRED|HANDSHAKE_FAILURE)/.test(
      code,
    )
  ) {
    return new AgentError(
      'CONFIG_INVALID',
      `etcd at ${at} refused our client certificate ${tls.files.certFile ?? ''} (--store-cert): ${describe(e)}`,
      {
        hint: 'the client certificate must be signed by the CA in etcd’s --trusted-ca-file, allow clientAuth, and be in date',
        cause: e,
      },
    );
  }
  if (
    code === 'ERR_SSL_WRONG_VERSION_NUMBER' ||
    code === 'ERR_SSL_PACKET_LENGTH_TOO_LONG' ||
    code === 'EPROTO'
  ) {
    return noTls(endpoint, e);
  }
  return new AgentError('UNAVAILABLE', `the TLS connection to etcd at ${at} failed: ${describe(e)}`, {
    hint: 'check etcd’s log for the other side of this error',
    cause: e,
  });
}

function noTls(endpoint: EtcdEndpoint, cause: unknown): AgentError {
  const why = cause === undefined ? '' : `: ${describe(cause)}`;
  return new AgentError(
    'CONFIG_INVALID',
    `etcd at ${endpoint.text} accepts connections but does not answer TLS${why}`,
    {
      hint: 'use etcd:// for a plaintext etcd on loopback, or give etcd https:// client URLs with --cert-file/--key-file',
      cause,
    },
  );
}

function clientCertRequired(endpoint: EtcdEndpoint, cause: unknown): AgentError {
  return new AgentError(
    'CONFIG_INVALID',
    `etcd at ${endpoint.text} requires a client certificate (it runs with --client-cert-auth) and none was given`,
    {
      hint: 'pass --store-cert and --store-key: a certificate signed by the CA in etcd’s --trusted-ca-file, with clientAuth usage',
      cause,
    },
  );
}

function notGrpc(endpoint: EtcdEndpoint, tls: boolean, cause?: unknown): AgentError {
  return tls
    ? new AgentError(
        'UNAVAILABLE',
        `etcd at ${endpoint.text} completed TLS but did not answer gRPC (HTTP/2)`,
        {
          hint: 'check that this is etcd’s client port (2379 by default), not its peer port, and etcd’s log',
          cause,
        },
      )
    : new AgentError(
        'CONFIG_INVALID',
        `etcd at ${endpoint.text} accepts connections but does not answer plaintext gRPC`,
        {
          hint: 'if etcd serves TLS (https:// client URLs), use etcds:// with --store-ca; else check that this is etcd’s client port',
          cause,
        },
      );
}
