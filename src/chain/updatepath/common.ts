import { create } from '@bufbuild/protobuf';
import type { Connection } from '../../api/index.js';
import { PathSchema, PathSegmentSchema } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';

/**
 * NSM's path rules (sdk updatepath/common.go; nsm-api.md §4.3), applied in place to `conn`.
 * Returns the index to restore on the way back: our own index when the current segment is already
 * ours (a refresh by the same hop), otherwise the caller's index.
 *
 * 0. No segments: index 0, one segment {name: self, id: connection.id or a new UUID}.
 * 1. The current segment is ours (same name): take its id as connection.id.
 * 2. Otherwise we are the next hop:
 *    2.0 the current segment's id must equal connection.id, and index+1 must not run past the path;
 *    2.1 a next segment with another name is renamed to us and given a new id;
 *    2.2 no next segment: append one with a new id;
 *    2.3 a next segment with our name keeps its id (a refresh that came through a new caller copy).
 */
export function updatePath(conn: Connection, self: string, newId: () => string): number {
  const path = (conn.path ??= create(PathSchema));
  if (path.pathSegments.length === 0) {
    path.index = 0;
    if (conn.id === '') conn.id = newId();
    path.pathSegments.push(create(PathSegmentSchema, { name: self, id: conn.id }));
    return 0;
  }

  const current = path.pathSegments[path.index];
  if (current?.name === self) {
    conn.id = current.id;
    return path.index;
  }

  const nextIndex = path.index + 1;
  if (nextIndex > path.pathSegments.length || !current) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `path index ${path.index} is past the end of a path of ${path.pathSegments.length} segments`,
      { hint: "send path.index pointing at the sender's own segment (index 0 for a client)" },
    );
  }
  if (current.id !== conn.id) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `connection.id "${conn.id}" does not match the id "${current.id}" of path segment ${path.index} ("${current.name}")`,
      { hint: 'a caller must send connection.id equal to path.path_segments[path.index].id' },
    );
  }

  const next = path.pathSegments[nextIndex];
  if (next && next.name !== self) {
    next.name = self;
    next.id = newId();
  }
  path.index = nextIndex;
  if (next) {
    conn.id = next.id;
  } else {
    conn.id = newId();
    path.pathSegments.push(create(PathSegmentSchema, { name: self, id: conn.id }));
  }
  return nextIndex - 1;
}

/** On the way back: the caller sees its own id and index again. */
export function restorePath(conn: Connection, index: number): void {
  const segment = conn.path?.pathSegments[index];
  if (!conn.path || !segment) {
    throw new AgentError('INTERNAL', `returned connection lost path segment ${index}`, {
      hint: 'an element after updatepath truncated the path; check the chain',
    });
  }
  conn.id = segment.id;
  conn.path.index = index;
}
