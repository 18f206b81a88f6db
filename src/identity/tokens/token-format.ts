import { createHash } from 'node:crypto';
import { parseGrpcUrl } from '../../api/grpc/index.js';
import { AgentError, describe } from '../../errors/index.js';

/**
 * The enrolment token as people copy it: `nsmagent1_` + base64url of
 *   id (8 bytes) | CA pin (32: SHA-256 of the CA SubjectPublicKeyInfo) | secret (32) | server URL (UTF-8) | check (4)
 * One string carries everything a fresh host needs: where the server is, how to recognise it
 * without any prior trust (the pin), and the secret that proves the host may join. The check bytes
 * (a truncated SHA-256 of the rest) turn a token cut or mangled in copying into a clear error
 * instead of an "unknown token" from the server.
 */
export interface EnrolmentToken {
  /** 16 hex characters; safe to show and log (token list, server logs). */
  readonly id: string;
  /** tcp://host:port of the control server's enrolment listener. */
  readonly serverUrl: string;
  /** SHA-256 of the mesh CA's SubjectPublicKeyInfo. */
  readonly caPin: Uint8Array;
  /** 256 random bits; never logged, stored only hashed on the server. */
  readonly secret: Uint8Array;
}

export const TOKEN_PREFIX = 'nsmagent1_';
export const TOKEN_ID_BYTES = 8;
export const TOKEN_SECRET_BYTES = 32;
const PIN_BYTES = 32;
const CHECK_BYTES = 4;
const FIXED_BYTES = TOKEN_ID_BYTES + PIN_BYTES + TOKEN_SECRET_BYTES;
const MAX_URL_BYTES = 1024;

const WHAT_A_TOKEN_LOOKS_LIKE =
  'a token is one string like nsmagent1_AbC…-_ (base64url), as printed by `nsm-agent token create` on the control server';

export function formatToken(token: EnrolmentToken): string {
  const id = Buffer.from(token.id, 'hex');
  if (id.length !== TOKEN_ID_BYTES || id.toString('hex') !== token.id) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `token id must be ${TOKEN_ID_BYTES * 2} lowercase hex characters`,
    );
  }
  if (token.caPin.length !== PIN_BYTES)
    throw new AgentError('INVALID_ARGUMENT', 'the CA pin must be a SHA-256 (32 bytes)');
  if (token.secret.length !== TOKEN_SECRET_BYTES) {
    throw new AgentError('INVALID_ARGUMENT', `the token secret must be ${TOKEN_SECRET_BYTES} bytes`);
  }
  parseGrpcUrl(token.serverUrl);
  const url = Buffer.from(token.serverUrl, 'utf8');
  if (url.length > MAX_URL_BYTES)
    throw new AgentError('INVALID_ARGUMENT', 'the server URL is too long for a token');
  const body = Buffer.concat([id, token.caPin, token.secret, url]);
  return TOKEN_PREFIX + Buffer.concat([body, check(body)]).toString('base64url');
}

/** Parses a token string (surrounding whitespace allowed); INVALID_ARGUMENT says what is wrong with it. */
export function parseToken(text: string): EnrolmentToken {
  const bad = (why: string): AgentError =>
    new AgentError('INVALID_ARGUMENT', `not a usable enrolment token: ${why}`, {
      hint: WHAT_A_TOKEN_LOOKS_LIKE,
    });
  const s = text.trim();
  if (s === '') throw bad('it is empty');
  if (!s.startsWith(TOKEN_PREFIX)) {
    const version = /^nsmagent(\d+)_/.exec(s)?.[1];
    if (version !== undefined) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `enrolment token format ${version} is not known to this nsm-agent`,
        {
          hint: 'install the nsm-agent version that matches the control server',
        },
      );
    }
    throw bad(`it does not start with ${TOKEN_PREFIX}`);
  }
  const payload = s.slice(TOKEN_PREFIX.length);
  if (!/^[A-Za-z0-9_-]+$/.test(payload)) {
    throw bad(
      'it contains characters outside base64url (A-Z a-z 0-9 - _); was it wrapped or cut when copied?',
    );
  }
  const raw = Buffer.from(payload, 'base64url');
  if (raw.length < FIXED_BYTES + CHECK_BYTES + 'tcp://a:1'.length) {
    throw bad(`it is too short (${s.length} characters); it was probably cut when copied`);
  }
  const body = raw.subarray(0, raw.length - CHECK_BYTES);
  if (!check(body).equals(raw.subarray(raw.length - CHECK_BYTES))) {
    throw bad('it is damaged (its check bytes do not match); copy it again in one piece');
  }
  const serverUrl = body.subarray(FIXED_BYTES).toString('utf8');
  try {
    parseGrpcUrl(serverUrl);
  } catch (e: unknown) {
    throw bad(`its server URL is not usable: ${describe(e)}`);
  }
  return {
    id: body.subarray(0, TOKEN_ID_BYTES).toString('hex'),
    caPin: new Uint8Array(body.subarray(TOKEN_ID_BYTES, TOKEN_ID_BYTES + PIN_BYTES)),
    secret: new Uint8Array(body.subarray(TOKEN_ID_BYTES + PIN_BYTES, FIXED_BYTES)),
    serverUrl,
  };
}

function check(body: Uint8Array): Buffer {
  return createHash('sha256').update(body).digest().subarray(0, CHECK_BYTES);
}
