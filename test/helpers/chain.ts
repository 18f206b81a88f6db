import { Writable } from 'node:stream';
import { create } from '@bufbuild/protobuf';
import { pino } from 'pino';
import type { Connection } from '../../src/api/index.js';
import { ConnectionSchema, PathSchema, PathSegmentSchema } from '../../src/api/index.js';
import type { NetworkServiceRequest } from '../../src/api/index.js';
import { NetworkServiceRequestSchema } from '../../src/api/index.js';
import { ChainContext } from '../../src/chain/core/context.js';
import type { ChainContextInit } from '../../src/chain/core/context.js';
import type { ChainElement } from '../../src/chain/core/element.js';
import { FakeClock } from '../../src/host/fake/clock.js';
import { SequenceRandom } from '../../src/host/fake/random.js';
import type { Logger } from '../../src/log/logger.js';
import { silentLogger } from '../../src/log/logger.js';

/** A chain context for tests: fake clock, counting ids, silent logger unless one is given. */
export function testContext(over: Partial<ChainContextInit> = {}): ChainContext {
  return new ChainContext({
    log: over.log ?? silentLogger(),
    clock: over.clock ?? new FakeClock(),
    random: over.random ?? new SequenceRandom(),
    ...(over.signal ? { signal: over.signal } : {}),
    ...(over.deadline !== undefined ? { deadline: over.deadline } : {}),
    ...(over.peer ? { peer: over.peer } : {}),
  });
}

/** A logger whose JSON lines are collected in `lines`. */
export function capturingLogger(level = 'debug'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const l of chunk.toString('utf8').split('\n'))
        if (l.trim()) lines.push(JSON.parse(l) as Record<string, unknown>);
      cb();
    },
  });
  return { log: pino({ level }, stream), lines };
}

export interface Segment {
  name: string;
  id: string;
}

/** A request whose connection has the given path, index and id. */
export function requestWith(
  segments: Segment[],
  index: number,
  id: string,
  networkService = 'web',
): NetworkServiceRequest {
  return create(NetworkServiceRequestSchema, {
    connection: create(ConnectionSchema, {
      id,
      networkService,
      path: create(PathSchema, { index, pathSegments: segments.map((s) => create(PathSegmentSchema, s)) }),
    }),
  });
}

export function segments(conn: Connection | undefined): Segment[] {
  return (conn?.path?.pathSegments ?? []).map((s) => ({ name: s.name, id: s.id }));
}

export interface Call {
  op: 'request' | 'close';
  element: string;
  phase: 'pre' | 'post' | 'error';
  connId: string;
  index: number;
}

/** An element that records what it saw before and after next, into a shared log. */
export function recorder(name: string, calls: Call[]): ChainElement {
  return {
    name,
    async request(ctx, request, next) {
      const c = request.connection;
      calls.push({
        op: 'request',
        element: name,
        phase: 'pre',
        connId: c?.id ?? '',
        index: c?.path?.index ?? -1,
      });
      try {
        const conn = await next.request(ctx, request);
        calls.push({
          op: 'request',
          element: name,
          phase: 'post',
          connId: conn.id,
          index: conn.path?.index ?? -1,
        });
        return conn;
      } catch (e: unknown) {
        calls.push({
          op: 'request',
          element: name,
          phase: 'error',
          connId: c?.id ?? '',
          index: c?.path?.index ?? -1,
        });
        throw e;
      }
    },
    async close(ctx, connection, next) {
      calls.push({
        op: 'close',
        element: name,
        phase: 'pre',
        connId: connection.id,
        index: connection.path?.index ?? -1,
      });
      await next.close(ctx, connection);
      calls.push({
        op: 'close',
        element: name,
        phase: 'post',
        connId: connection.id,
        index: connection.path?.index ?? -1,
      });
    },
  };
}

/** A manually opened gate: `wait()` blocks until `open()`. */
export function gate(): { wait: () => Promise<void>; open: () => void } {
  let open!: () => void;
  const p = new Promise<void>((r) => (open = r));
  return { wait: () => p, open };
}

/** An element that runs `fn` before next (to block, fail or inspect). */
export function hook(
  name: string,
  fn: (op: 'request' | 'close', ctx: ChainContext, conn: Connection | undefined) => Promise<void> | void,
): ChainElement {
  return {
    name,
    async request(ctx, request, next) {
      await fn('request', ctx, request.connection);
      return next.request(ctx, request);
    },
    async close(ctx, connection, next) {
      await fn('close', ctx, connection);
      await next.close(ctx, connection);
    },
  };
}
