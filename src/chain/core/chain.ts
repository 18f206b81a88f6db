import type { Connection } from '../../api/index.js';
import type { NetworkServiceRequest } from '../../api/index.js';
import { AgentError } from '../../errors/agent-error.js';
import type { ChainContext } from './context.js';
import type { ChainElement, Next } from './element.js';
import { traced } from './trace.js';

/** A built chain: a NetworkService implementation made of elements, run in list order. */
export interface Chain extends Pick<Next, 'request' | 'close'> {
  readonly name: string;
  /** Element names in order, for status output and tests. */
  readonly elements: readonly string[];
}

/**
 * Builds a chain from a flat list of elements (NSM sdk `chain.NewNetworkServiceServer`).
 * Order rules stated by the elements are checked here, once, so a wrongly assembled chain fails at
 * start-up with a message that names the elements, never at request time.
 *
 * The tail of the chain returns the request's connection unchanged and closes nothing, as in NSM.
 */
export function buildChain(name: string, elements: readonly ChainElement[]): Chain {
  checkOrder(name, elements);
  const wrapped = elements.map((e) => traced(name, e));

  const tail: Next = {
    request: (_ctx, request) => Promise.resolve(requireConnection(request)),
    close: () => Promise.resolve(),
  };
  // Build the `next` objects back to front once; each element gets the same `next` every call.
  let next: Next = tail;
  for (let i = wrapped.length - 1; i >= 0; i--) {
    const element = wrapped[i] as ChainElement;
    const after = next;
    next = {
      request: (ctx: ChainContext, request: NetworkServiceRequest) => element.request(ctx, request, after),
      close: (ctx: ChainContext, connection: Connection) => element.close(ctx, connection, after),
    };
  }
  const head = next;
  return {
    name,
    elements: elements.map((e) => e.name),
    request: (ctx, request) => head.request(ctx, request),
    close: (ctx, connection) => head.close(ctx, connection),
  };
}

function requireConnection(request: NetworkServiceRequest): Connection {
  if (!request.connection) {
    throw new AgentError('INVALID_ARGUMENT', 'request has no connection', {
      hint: 'send a NetworkServiceRequest whose `connection` carries at least `network_service`',
    });
  }
  return request.connection;
}

/** Checks the order rules of every element; throws CHAIN_INVALID listing every violation found. */
export function checkOrder(chainName: string, elements: readonly ChainElement[]): void {
  const position = new Map<string, number>();
  const problems: string[] = [];
  elements.forEach((e, i) => {
    if (position.has(e.name)) {
      problems.push(`"${e.name}" appears twice (positions ${position.get(e.name) ?? -1} and ${i})`);
    } else {
      position.set(e.name, i);
    }
  });
  elements.forEach((e, i) => {
    const rules = e.order;
    if (!rules) return;
    if (rules.first && i !== 0) problems.push(`"${e.name}" must be the first element, but stands at ${i}`);
    for (const dep of rules.requires ?? []) {
      const at = position.get(dep);
      if (at === undefined)
        problems.push(`"${e.name}" requires "${dep}" before it, but the chain has no "${dep}"`);
      else if (at > i) problems.push(`"${e.name}" requires "${dep}" before it, but "${dep}" stands after it`);
    }
    for (const dep of rules.after ?? []) {
      const at = position.get(dep);
      if (at !== undefined && at > i) problems.push(`"${e.name}" must stand after "${dep}"`);
    }
    for (const dep of rules.before ?? []) {
      const at = position.get(dep);
      if (at !== undefined && at < i) problems.push(`"${e.name}" must stand before "${dep}"`);
    }
  });
  if (problems.length > 0) {
    throw new AgentError(
      'CHAIN_INVALID',
      `chain "${chainName}" is assembled wrongly: ${problems.join('; ')}`,
      {
        hint: `fix the element list of "${chainName}" (order now: ${elements.map((e) => e.name).join(' → ')})`,
      },
    );
  }
}
