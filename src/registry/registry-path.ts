import { AgentError } from '../errors/index.js';

/**
 * The registry's `path` gRPC metadata (sdk `registry/common/grpcmetadata`, docs/nsm-api.md §4.9):
 * JSON of Go's `struct { Index uint32; PathSegments []*struct{ Token string `json:"token"` } }`,
 * e.g. `{"Index":0,"PathSegments":null}` on a first call. Each registry hop appends its segment,
 * and answers with the updated path in the `path` response header; clients resend it on refresh.
 */
export const PATH_METADATA_KEY = 'path';

export interface RegistryPathSegment {
  token: string;
}

export interface RegistryPath {
  index: number;
  segments: RegistryPathSegment[];
}

const MAX_PATH_JSON_BYTES = 64 * 1024;
const MAX_SEGMENTS = 64;
const UINT32_MAX = 0xffff_ffff;

/** Go's encoding/json output for the path: field names as Go writes them, nil slice as null. */
export function formatRegistryPath(path: RegistryPath): string {
  return JSON.stringify({
    Index: path.index,
    PathSegments: path.segments.length === 0 ? null : path.segments.map((s) => ({ token: s.token })),
  });
}

/**
 * Parses the metadata value as Go's json.Unmarshal would fill the struct: field names match
 * case-insensitively, unknown fields are ignored, null/missing mean zero values. Anything else
 * is INVALID_ARGUMENT (upstream would drop the path and fail later in the policies with a less
 * helpful PermissionDenied).
 */
export function parseRegistryPath(text: string): RegistryPath {
  const bad = (why: string): AgentError =>
    new AgentError('INVALID_ARGUMENT', `the "path" metadata is malformed: ${why}`, {
      hint: 'send the JSON the registry returned in its "path" response header, or {"Index":0,"PathSegments":null} on the first call',
    });
  if (Buffer.byteLength(text) > MAX_PATH_JSON_BYTES)
    throw bad(`it is longer than ${MAX_PATH_JSON_BYTES} bytes`);
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw bad('it is not JSON');
  }
  if (value === null) return { index: 0, segments: [] };
  if (typeof value !== 'object' || Array.isArray(value)) throw bad('it is not a JSON object');
  const fields = value as Record<string, unknown>;
  const index = field(fields, 'index');
  const rawSegments = field(fields, 'pathsegments');
  let idx = 0;
  if (index !== undefined && index !== null) {
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index > UINT32_MAX) {
      throw bad('Index must be an unsigned 32-bit integer');
    }
    idx = index;
  }
  const segments: RegistryPathSegment[] = [];
  if (rawSegments !== undefined && rawSegments !== null) {
    if (!Array.isArray(rawSegments)) throw bad('PathSegments must be a list or null');
    if (rawSegments.length > MAX_SEGMENTS) throw bad(`it has more than ${MAX_SEGMENTS} segments`);
    for (const s of rawSegments as unknown[]) {
      if (s === null) {
        // Go leaves a nil *PathSegment in the slice; treat it as a segment without a token.
        segments.push({ token: '' });
        continue;
      }
      if (typeof s !== 'object' || Array.isArray(s)) throw bad('each path segment must be an object');
      const token = field(s as Record<string, unknown>, 'token');
      if (token !== undefined && token !== null && typeof token !== 'string')
        throw bad('a segment token must be a string');
      segments.push({ token: typeof token === 'string' ? token : '' });
    }
  }
  return { index: idx, segments };
}

function field(obj: Record<string, unknown>, lowerName: string): unknown {
  // Go prefers an exact match, then a case-insensitive one.
  for (const [k, v] of Object.entries(obj)) if (k.toLowerCase() === lowerName) return v;
  return undefined;
}

/**
 * sdk `registry/common/updatepath.updatePath`: an empty path becomes [peer, own] at index 1; else
 * the index moves one on, the previous segment takes the peer's token and ours is appended (first
 * call) or replaced (refresh). Mutates and returns `path`; `callerIndex` is the index the response
 * header carries (the caller's own segment).
 */
export function updateRegistryPath(
  path: RegistryPath,
  peerToken: string,
  ownToken: string,
): { readonly path: RegistryPath; readonly callerIndex: number } {
  if (path.segments.length === 0) {
    path.segments.push({ token: peerToken }, { token: ownToken });
    path.index = 1;
    return { path, callerIndex: 0 };
  }
  const next = path.index + 1;
  if (next > path.segments.length) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `the "path" metadata is inconsistent: Index+1 (${next}) exceeds the number of segments (${path.segments.length})`,
      { hint: 'resend the path exactly as the registry returned it in its "path" response header' },
    );
  }
  const prev = path.segments[path.index];
  if (prev) prev.token = peerToken;
  path.index = next;
  const curr = path.segments[next];
  if (curr) curr.token = ownToken;
  else path.segments.push({ token: ownToken });
  return { path, callerIndex: next - 1 };
}

/** sdk `updatePathIDs`: sets ids[index], or appends when the list is shorter (not padded, as upstream). */
export function updatePathIds(pathIds: readonly string[], index: number, id: string): string[] {
  const out = [...pathIds];
  if (index >= out.length) out.push(id);
  else out[index] = id;
  return out;
}
