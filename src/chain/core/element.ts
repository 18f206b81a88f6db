import type { Connection } from '../../api/index.js';
import type { NetworkServiceRequest } from '../../api/index.js';
import type { ChainContext } from './context.js';

/** The rest of the chain after an element. */
export interface Next {
  request(ctx: ChainContext, request: NetworkServiceRequest): Promise<Connection>;
  close(ctx: ChainContext, connection: Connection): Promise<void>;
}

/**
 * Rules an element states about where it may stand; checked once when the chain is built.
 * Names refer to other elements' `name`.
 */
export interface OrderRules {
  /** These must be present and stand before this element. */
  readonly requires?: readonly string[];
  /** If present, these must stand before this element. */
  readonly after?: readonly string[];
  /** If present, these must stand after this element. */
  readonly before?: readonly string[];
  /** This element must be the first of the chain. */
  readonly first?: boolean;
}

/**
 * One element of a NetworkService chain (NSM sdk style): do its part, `await next`, do its post-work;
 * if next throws, undo only its own side effects and rethrow. The same contract serves server chains
 * and client chains.
 */
export interface ChainElement {
  /** NSM's element name (`begin`, `updatepath`, ...); shown in traces and order errors. */
  readonly name: string;
  readonly order?: OrderRules;
  request(ctx: ChainContext, request: NetworkServiceRequest, next: Next): Promise<Connection>;
  close(ctx: ChainContext, connection: Connection, next: Next): Promise<void>;
}
