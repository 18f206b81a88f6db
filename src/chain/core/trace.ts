import type { Connection } from '../../api/index.js';
import { AgentError, describe } from '../../errors/agent-error.js';
import type { ChainElement } from './element.js';

/**
 * Wraps an element so that, when the context's logger has debug enabled, each call logs the element,
 * the connection id, path index, duration and outcome. With debug off the cost is one level check.
 */
export function traced(chain: string, element: ChainElement): ChainElement {
  return {
    name: element.name,
    ...(element.order ? { order: element.order } : {}),
    async request(ctx, request, next) {
      if (!ctx.log.isLevelEnabled('debug')) return element.request(ctx, request, next);
      const start = performance.now();
      const before = summary(request.connection);
      try {
        const conn = await element.request(ctx, request, next);
        ctx.log.debug(
          {
            chain,
            element: element.name,
            op: 'request',
            ms: round(performance.now() - start),
            in: before,
            out: summary(conn),
          },
          `${chain}/${element.name} request ok`,
        );
        return conn;
      } catch (e: unknown) {
        ctx.log.debug(
          {
            chain,
            element: element.name,
            op: 'request',
            ms: round(performance.now() - start),
            in: before,
            err: errSummary(e),
          },
          `${chain}/${element.name} request failed`,
        );
        throw e;
      }
    },
    async close(ctx, connection, next) {
      if (!ctx.log.isLevelEnabled('debug')) return element.close(ctx, connection, next);
      const start = performance.now();
      try {
        await element.close(ctx, connection, next);
        ctx.log.debug(
          {
            chain,
            element: element.name,
            op: 'close',
            ms: round(performance.now() - start),
            in: summary(connection),
          },
          `${chain}/${element.name} close ok`,
        );
      } catch (e: unknown) {
        ctx.log.debug(
          {
            chain,
            element: element.name,
            op: 'close',
            ms: round(performance.now() - start),
            in: summary(connection),
            err: errSummary(e),
          },
          `${chain}/${element.name} close failed`,
        );
        throw e;
      }
    },
  };
}

interface ConnSummary {
  connId: string;
  index: number;
  segments: number;
  mechanism?: string;
}

// Tokens and parameters can hold key material; a trace shows the shape, not the contents.
function summary(conn: Connection | undefined): ConnSummary | undefined {
  if (!conn) return undefined;
  return {
    connId: conn.id,
    index: conn.path?.index ?? 0,
    segments: conn.path?.pathSegments.length ?? 0,
    ...(conn.mechanism ? { mechanism: `${conn.mechanism.cls}/${conn.mechanism.type}` } : {}),
  };
}

function errSummary(e: unknown): { code: string; message: string } {
  return AgentError.is(e) ? { code: e.code, message: e.message } : { code: 'UNKNOWN', message: describe(e) };
}

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
