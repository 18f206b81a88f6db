import { clone, create } from '@bufbuild/protobuf';
import { AgentError } from '../errors/index.js';
import type { Random } from '../host/index.js';
import { systemRandom } from '../host/index.js';
import type { Connection, PathSegment } from './gen/connection_pb.js';
import { ConnectionSchema } from './gen/connection_pb.js';

/**
 * Helpers for connection.Connection that every layer needs: a fresh client connection in the exact
 * shape nsmgr's updatepath accepts, deep copies, and the three path segments a hop cares about.
 */

/** A deep copy; chain elements copy before they change a connection someone else still holds. */
export function cloneConnection(conn: Connection): Connection {
  return clone(ConnectionSchema, conn);
}

export interface NewClientConnectionOptions {
  /** Connection id; a new UUID when omitted. Stable ids (e.g. `<name>-<i>`) let a restart find its connection. */
  readonly id?: string;
  /** `name` or `name@domain`. */
  readonly networkService: string;
  /** Client labels, matched by the NetworkService's source_selector. */
  readonly labels?: Readonly<Record<string, string>>;
  /** Name of this client; becomes path_segments[0].name. */
  readonly clientName: string;
  /** Source of the default id; tests pass a deterministic one. */
  readonly random?: Pick<Random, 'uuid'>;
}

/**
 * The first Request of a client. nsmgr's updatepath requires `id == path_segments[index].id` and
 * appends its own segment after index 0 (nsm-api.md §4.3), so the path must be exactly one segment
 * naming this client with the connection id.
 */
export function newClientConnection(options: NewClientConnectionOptions): Connection {
  if (options.networkService === '') {
    throw new AgentError('INVALID_ARGUMENT', 'a client connection needs a network service name', {
      hint: 'name the network service to join, e.g. "my-service" or "my-service@domain"',
    });
  }
  if (options.clientName === '') {
    throw new AgentError('INVALID_ARGUMENT', 'a client connection needs a client name', {
      hint: 'set the client name; it becomes the first path segment',
    });
  }
  const id = options.id ?? (options.random ?? systemRandom).uuid();
  if (id === '') {
    throw new AgentError('INVALID_ARGUMENT', 'a client connection id must not be empty', {
      hint: 'omit the id to get a new UUID',
    });
  }
  return create(ConnectionSchema, {
    id,
    networkService: options.networkService,
    labels: { ...options.labels },
    path: { index: 0, pathSegments: [{ name: options.clientName, id }] },
  });
}

/** The segment of the hop that owns this copy of the connection (path.index), if the path has it. */
export function currentSegment(conn: Connection): PathSegment | undefined {
  return segmentAt(conn, 0);
}

/** The caller's segment (index − 1): where updatetoken puts the caller's token and timeout reads expiry. */
export function prevSegment(conn: Connection): PathSegment | undefined {
  return segmentAt(conn, -1);
}

/** The callee's segment (index + 1): the forwarder or NSE this hop talked to last time. */
export function nextSegment(conn: Connection): PathSegment | undefined {
  return segmentAt(conn, 1);
}

function segmentAt(conn: Connection, offset: number): PathSegment | undefined {
  const path = conn.path;
  if (path === undefined) return undefined;
  const i = path.index + offset;
  return i >= 0 ? path.pathSegments[i] : undefined;
}
