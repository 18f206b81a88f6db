import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { parseSpiffeId } from '../../api/grpc/index.js';
import { AgentError } from '../../errors/index.js';
import type { Clock } from '../../host/index.js';
import { issueSvid } from '../ca/issue-svid.js';
import type { MeshCa } from '../ca/mesh-ca.js';
import { generateEcKeyPair } from '../crypto/ec-keys.js';
import { PUBLIC_FILE_MODE, SECRET_FILE_MODE, writeFileAtomic } from '../../host/atomic-write.js';

export interface IssueToolIdentityOptions {
  readonly ca: MeshCa;
  /** e.g. spiffe://<td>/tool/grpcurl; not an agent's or the server's identity. */
  readonly spiffeId: string;
  readonly outDir: string;
  /** Default 30 days. */
  readonly ttlMs?: number;
  readonly clock?: Clock;
}

export interface ToolIdentityFiles {
  readonly spiffeId: string;
  readonly certPath: string;
  readonly keyPath: string;
  readonly bundlePath: string;
  readonly expiresAt: number;
}

export const DEFAULT_TOOL_SVID_TTL_MS = 30 * 24 * 3600_000;

/**
 * `server issue`: an SVID for operators' tools (grpcurl, scripts, monitoring) or an NSM cluster
 * component, written as `svid.pem`, `svid.key` (0600) and `bundle.pem` in `outDir`, e.g.
 *   grpcurl -cacert bundle.pem -cert svid.pem -key svid.key -authority … host:5002 list
 * Agent and server identities are refused: those come only from enrolment and `server init`, and a
 * copy would let a tool impersonate them.
 */
export async function issueToolIdentity(options: IssueToolIdentityOptions): Promise<ToolIdentityFiles> {
  const { path } = parseSpiffeId(options.spiffeId);
  if (path === '/server' || path === '/agent' || path.startsWith('/agent/')) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `${options.spiffeId} is reserved for the control server or enrolled hosts`,
      {
        hint: `pick another path, e.g. spiffe://<trust-domain>/tool/<name>`,
      },
    );
  }
  const keys = await generateEcKeyPair();
  const svid = await issueSvid(options.ca, {
    spiffeId: options.spiffeId,
    publicKeySpki: keys.spki,
    ttlMs: options.ttlMs ?? DEFAULT_TOOL_SVID_TTL_MS,
    ...(options.clock ? { clock: options.clock } : {}),
  });
  await mkdir(options.outDir, { recursive: true, mode: 0o700 });
  const files = {
    keyPath: join(options.outDir, 'svid.key'),
    certPath: join(options.outDir, 'svid.pem'),
    bundlePath: join(options.outDir, 'bundle.pem'),
  };
  await writeFileAtomic(files.keyPath, keys.privateKeyPem, SECRET_FILE_MODE);
  await writeFileAtomic(files.certPath, svid.certPem, PUBLIC_FILE_MODE);
  await writeFileAtomic(files.bundlePath, options.ca.bundlePem, PUBLIC_FILE_MODE);
  return { spiffeId: svid.spiffeId, ...files, expiresAt: svid.notAfter };
}
