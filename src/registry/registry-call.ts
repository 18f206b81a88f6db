import { Metadata } from '@grpc/grpc-js';
import type { CallContext } from '../api/grpc/index.js';
import { clientTokenProblem, decodeToken, readClientToken } from '../api/token/index.js';
import type { ClientToken, TokenSigner } from '../api/token/index.js';
import type { AgentError } from '../errors/index.js';
import type { RegistryPolicy, RegistryPolicyInput } from './registry-policy.js';
import { evaluatePolicies } from './registry-policy.js';
import {
  PATH_METADATA_KEY,
  formatRegistryPath,
  parseRegistryPath,
  updateRegistryPath,
  updatePathIds,
} from './registry-path.js';
import type { RegistryPath } from './registry-path.js';

/**
 * The front of every registry Register/Unregister, as upstream's chain runs it:
 * grpcmetadata (read `path`) → updatepath (append our segment and token, update path_ids) →
 * authorize (policies) … → grpcmetadata again (send the updated `path` header back).
 */
export interface RegistryCall {
  /** The caller's token from metadata, when it sent a usable one. */
  readonly peerToken: ClientToken | undefined;
  /** Our token for this hop (its expiry caps the NSE expiration, as upstream). */
  readonly ownToken: ClientToken;
  /** `path_ids` with the caller's and our SPIFFE IDs set at their indexes. */
  pathIds(current: readonly string[]): string[];
  /** Runs the policies; returns the refusal, if any. */
  authorize(
    operation: RegistryPolicyInput['operation'],
    resource: RegistryPolicyInput['resource'],
    resourceName: string,
    owner: string | undefined,
  ): AgentError | undefined;
  /** Sends the `path` response header (only when the caller sent `path`, as upstream). */
  sendPathHeader(): void;
}

export interface RegistryCallDeps {
  readonly signer: TokenSigner;
  readonly policies: readonly RegistryPolicy[];
  readonly now: () => number;
}

export function beginRegistryCall(ctx: CallContext, deps: RegistryCallDeps): RegistryCall {
  const rawPath = ctx.metadata.get(PATH_METADATA_KEY);
  const last = rawPath[rawPath.length - 1];
  // Go reads the last value; an unparsable one is refused here instead of failing later, vaguely.
  const pathMissing = last === undefined;
  const path: RegistryPath =
    last === undefined
      ? { index: 0, segments: [] }
      : parseRegistryPath(typeof last === 'string' ? last : last.toString('utf8'));

  const tokenResult = readClientToken(ctx.metadata);
  const peerToken = tokenResult.kind === 'present' ? tokenResult.value : undefined;
  const peerTokenProblem = clientTokenProblem(tokenResult);

  const peerCert = ctx.peer.certificate;
  const peerSpiffeId = ctx.peer.spiffeId;
  // Reused within one exp second per peer: same claims, one ES256 signature less per call under load.
  const ownToken = deps.signer.mint(
    peerSpiffeId === undefined
      ? undefined
      : { spiffeId: peerSpiffeId, ...(peerCert ? { notAfterMs: Date.parse(peerCert.validTo) } : {}) },
    { reuse: true },
  );
  const { callerIndex } = updateRegistryPath(path, peerToken?.token ?? '', ownToken.token);
  const ourIndex = path.index;
  const peerId = subOf(peerToken?.token ?? '');

  // Upstream's authorize element reads the path from the context; without `path` metadata it
  // finds none and checks an empty path (so prev_token_signed refuses).
  const checked: RegistryPath = pathMissing ? { index: 0, segments: [] } : path;
  const leftSide = checked.segments.slice(0, checked.index + 1);
  const resourceId = subOf(checked.segments[0]?.token ?? '');

  return {
    peerToken,
    ownToken,
    pathIds(current) {
      return updatePathIds(updatePathIds(current, ourIndex - 1, peerId), ourIndex, deps.signer.spiffeId);
    },
    authorize(operation, resource, resourceName, owner) {
      return evaluatePolicies(deps.policies, {
        operation,
        resource,
        resourceName,
        resourceId,
        owner,
        segments: leftSide,
        index: checked.segments.length === 0 ? 0 : checked.index,
        peerCertificate: peerCert,
        nowMs: deps.now(),
        peerTokenProblem,
        pathMissing,
      });
    },
    sendPathHeader() {
      if (pathMissing) return;
      const md = new Metadata();
      md.set(PATH_METADATA_KEY, formatRegistryPath({ index: callerIndex, segments: path.segments }));
      ctx.sendHeader(md);
    },
  };
}

function subOf(token: string): string {
  if (token === '') return '';
  try {
    return decodeToken(token).claims.sub ?? '';
  } catch {
    return '';
  }
}
