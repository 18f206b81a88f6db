import { X509Certificate, createPrivateKey, createPublicKey, sign, verify } from 'node:crypto';
import type { KeyObject } from 'node:crypto';
import { AgentError, describe } from '../../errors/index.js';

/**
 * NSM's per-hop token (docs/nsm-api.md §5.2): a JWT signed ES256 with the sender's X.509-SVID key,
 * exactly as golang-jwt v4 writes it for `spiffejwt.TokenGeneratorFunc`:
 *   header  {"alg":"ES256","typ":"JWT"}
 *   payload {"sub":"<own SPIFFE ID>","aud":["<peer SPIFFE ID>"],"exp":<unix seconds>}   (aud omitted without a peer)
 *   signature: JOSE ES256 = raw r||s, 32 bytes each, base64url without padding.
 * Verification (OPA's io.jwt.verify_es256) checks the signature only; expiry and audience are the
 * policies' business (src/registry/policies).
 */

/** The claims NSM uses; anything else in a peer's token is kept in `raw`. */
export interface TokenClaims {
  readonly sub: string | undefined;
  /** Always a list: a single-string `aud` from a non-Go peer is read as a list of one. */
  readonly aud: readonly string[];
  /** Expiry in unix seconds, as in the token. */
  readonly exp: number | undefined;
  readonly raw: Readonly<Record<string, unknown>>;
}

export interface DecodedToken {
  readonly header: Readonly<Record<string, unknown>>;
  readonly claims: TokenClaims;
  /** `base64url(header).base64url(payload)`, the bytes the signature covers. */
  readonly signingInput: string;
  readonly signature: Uint8Array;
}

export interface MintTokenOptions {
  /** The SVID's private key (EC P-256), as a KeyObject or PKCS#8/SEC1 PEM. */
  readonly privateKey: KeyObject | string;
  readonly subject: string;
  /** The peer's SPIFFE ID; left out when there is no TLS peer, as upstream does. */
  readonly audience?: string;
  readonly expiresAtMs: number;
}

const HEADER = { alg: 'ES256', typ: 'JWT' } as const;
const ES256_SIGNATURE_BYTES = 64;
const BASE64URL_RE = /^[A-Za-z0-9_-]*$/;

/** Signs a token; the key must be EC P-256 (an SVID key of this mesh). */
export function mintToken(options: MintTokenOptions): string {
  const key = p256PrivateKey(options.privateKey);
  const payload: Record<string, unknown> = { sub: options.subject };
  if (options.audience !== undefined && options.audience !== '') payload.aud = [options.audience];
  // golang-jwt's NumericDate truncates to whole seconds.
  payload.exp = Math.floor(options.expiresAtMs / 1000);
  const signingInput = `${b64urlJson(HEADER)}.${b64urlJson(payload)}`;
  const signature = sign('sha256', Buffer.from(signingInput), { key, dsaEncoding: 'ieee-p1363' });
  return `${signingInput}.${signature.toString('base64url')}`;
}

/**
 * Decodes without checking the signature (OPA's io.jwt.decode): three base64url parts, a JSON
 * object header and payload. Throws UNAUTHENTICATED saying what is wrong; never echoes the token.
 *
 * A token decoded before is answered from a small cache (the result is a pure function of the
 * string): the same tokens come back on every hop and every request of a burst (clients and servers
 * reuse a token within its exp second), and each is read by several policies. Callers must not
 * change the result.
 */
export function decodeToken(token: string): DecodedToken {
  const known = decoded.get(token);
  if (known !== undefined) return known;
  const d = decodeUncached(token);
  if (decoded.size >= MAX_DECODED_TOKENS) decoded.delete(decoded.keys().next().value ?? '');
  decoded.set(token, d);
  return d;
}

/** Tokens decoded lately, oldest first out; bounded like the verify cache. */
const decoded = new Map<string, DecodedToken>();
const MAX_DECODED_TOKENS = 256;

function decodeUncached(token: string): DecodedToken {
  const parts = token.split('.');
  if (parts.length !== 3) throw badToken(`it has ${parts.length} dot-separated parts, a JWT has 3`);
  const [h = '', p = '', s = ''] = parts;
  for (const part of parts) {
    if (!BASE64URL_RE.test(part)) throw badToken('a part is not base64url');
  }
  const header = jsonObject(h, 'header');
  const raw = jsonObject(p, 'payload');
  const aud = raw.aud;
  const claims: TokenClaims = {
    sub: typeof raw.sub === 'string' ? raw.sub : undefined,
    aud: typeof aud === 'string' ? [aud] : Array.isArray(aud) ? aud.filter((a) => typeof a === 'string') : [],
    exp: typeof raw.exp === 'number' && Number.isFinite(raw.exp) ? raw.exp : undefined,
    raw,
  };
  return {
    header,
    claims,
    signingInput: `${h}.${p}`,
    signature: new Uint8Array(Buffer.from(s, 'base64url')),
  };
}

/**
 * True when `token` is an ES256 JWT whose signature verifies with `publicKey` (a KeyObject, an
 * X509Certificate, or a PEM certificate/public key). False for any malformed token or wrong key.
 *
 * A token that verified with a key (the same KeyObject; for a certificate, the same X509Certificate
 * object) is remembered until its exp, so a token seen again — a server's reused per-caller token
 * on each of many concurrent replies, a path re-sent on refresh — costs no second ECDSA verify. The
 * answer is the same as verifying again: the signature of fixed bytes under a fixed key does not
 * change. Expiry is still each policy's check (tokens_expired), not this function's.
 */
export function verifyTokenSignature(
  token: string,
  publicKey: KeyObject | X509Certificate | string,
): boolean {
  const known = verified.get(token);
  if (known !== undefined) {
    if (known.expMs > Date.now() && known.key === cachedKeyOf(publicKey)) return true;
  }
  let decoded: DecodedToken;
  try {
    decoded = decodeToken(token);
  } catch {
    return false;
  }
  if (decoded.header.alg !== 'ES256' || decoded.signature.length !== ES256_SIGNATURE_BYTES) return false;
  const key = publicKeyOf(publicKey);
  let ok: boolean;
  try {
    ok = verify(
      'sha256',
      Buffer.from(decoded.signingInput),
      { key, dsaEncoding: 'ieee-p1363' },
      decoded.signature,
    );
  } catch {
    return false;
  }
  const exp = decoded.claims.exp;
  if (ok && exp !== undefined && exp * 1000 > Date.now()) remember(token, key, exp * 1000);
  return ok;
}

/** Tokens that verified, with the key they verified with and their exp; bounded, oldest out first. */
const verified = new Map<string, { readonly key: KeyObject; readonly expMs: number }>();
/** A few hundred: the repeats are the reused server tokens (one per audience and second) and refreshes. */
const MAX_VERIFIED_TOKENS = 256;

function remember(token: string, key: KeyObject, expMs: number): void {
  verified.delete(token);
  if (verified.size >= MAX_VERIFIED_TOKENS) {
    const now = Date.now();
    for (const [t, v] of verified) if (v.expMs <= now) verified.delete(t);
    if (verified.size >= MAX_VERIFIED_TOKENS) verified.delete(verified.keys().next().value ?? '');
  }
  verified.set(token, { key, expMs });
}

/** The public key of each certificate object, derived once (X509Certificate.publicKey makes a new KeyObject per read). */
const certificateKeys = new WeakMap<X509Certificate, KeyObject>();

/** The KeyObject a remembered verification must have used: only stable objects can match. */
function cachedKeyOf(k: KeyObject | X509Certificate | string): KeyObject | undefined {
  if (typeof k === 'string') return undefined;
  if (k instanceof X509Certificate) return certificateKeys.get(k);
  return k.type === 'public' ? k : undefined;
}

function publicKeyOf(k: KeyObject | X509Certificate | string): KeyObject {
  if (k instanceof X509Certificate) {
    let key = certificateKeys.get(k);
    if (key === undefined) certificateKeys.set(k, (key = k.publicKey));
    return key;
  }
  if (typeof k === 'string') {
    try {
      return k.includes('BEGIN CERTIFICATE') ? new X509Certificate(k).publicKey : createPublicKey(k);
    } catch (e: unknown) {
      throw new AgentError('INVALID_ARGUMENT', `cannot read the verification key: ${describe(e)}`, {
        cause: e,
      });
    }
  }
  return k.type === 'private' ? createPublicKey(k) : k;
}

/** Signing keys already found to be EC P-256 (the check reads the key's details from OpenSSL each time). */
const p256Keys = new WeakSet<KeyObject>();

function p256PrivateKey(k: KeyObject | string): KeyObject {
  if (typeof k !== 'string' && p256Keys.has(k)) return k;
  let key: KeyObject;
  try {
    key = typeof k === 'string' ? createPrivateKey(k) : k;
  } catch (e: unknown) {
    // describe() of a key parse error never includes the key material.
    throw new AgentError('CONFIG_INVALID', `the token signing key does not parse: ${describe(e)}`, {
      cause: e,
    });
  }
  if (
    key.type !== 'private' ||
    key.asymmetricKeyType !== 'ec' ||
    key.asymmetricKeyDetails?.namedCurve !== 'prime256v1'
  ) {
    throw new AgentError(
      'CONFIG_INVALID',
      'NSM tokens are ES256: the signing key must be an EC P-256 private key',
      {
        hint: 'use the private key of this host’s X.509-SVID',
      },
    );
  }
  p256Keys.add(key);
  return key;
}

function b64urlJson(value: unknown): string {
  return Buffer.from(JSON.stringify(value)).toString('base64url');
}

function jsonObject(part: string, what: string): Record<string, unknown> {
  let value: unknown;
  try {
    value = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  } catch {
    throw badToken(`its ${what} is not JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw badToken(`its ${what} is not a JSON object`);
  }
  return value as Record<string, unknown>;
}

function badToken(why: string): AgentError {
  return new AgentError('UNAUTHENTICATED', `the token is not a JWT: ${why}`);
}
