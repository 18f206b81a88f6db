import { AgentError } from '../errors/index.js';

/**
 * Two different FAILED_PRECONDITION cases cross the store contract: a compare-and-swap that lost
 * (retry: read again and recompute) and a watch that asked for history the store no longer has
 * (list again, then watch from the list's revision). `details.reason` tells them apart.
 */
export type StoreFailureReason = 'conflict' | 'compacted';

export function conflictError(key: string, expected: number, actual: number): AgentError {
  return new AgentError(
    'FAILED_PRECONDITION',
    `conflict on store key ${JSON.stringify(key)}: expected modRevision ${expected}, it is ${actual}`,
    {
      hint: 'another writer changed it first; read the key again and retry',
      details: { reason: 'conflict', key, expected, actual },
    },
  );
}

export function compactedError(afterRevision: number, oldest: number): AgentError {
  return new AgentError(
    'FAILED_PRECONDITION',
    `store history after revision ${afterRevision} is no longer kept (oldest replayable: after ${oldest})`,
    {
      hint: 'list again and watch from the revision the list returns',
      details: { reason: 'compacted', afterRevision, oldest },
    },
  );
}

/** True for a lost compare-and-swap (as opposed to any other failure). */
export function isConflict(e: unknown): boolean {
  return AgentError.is(e, 'FAILED_PRECONDITION') && e.details['reason'] === 'conflict';
}

/** True when a watch asked for history the store has compacted away. */
export function isCompacted(e: unknown): boolean {
  return AgentError.is(e, 'FAILED_PRECONDITION') && e.details['reason'] === 'compacted';
}

export function leaseNotFoundError(lease: number): AgentError {
  return new AgentError('NOT_FOUND', `store lease ${lease} does not exist (expired or revoked)`, {
    hint: 'grant a new lease and write the keys again',
    details: { lease },
  });
}
