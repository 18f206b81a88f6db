/**
 * Reads `signal.aborted` afresh. TypeScript narrows a property checked before an `await` as if it
 * could not change across it; a signal's can.
 */
export function aborted(signal: AbortSignal): boolean {
  return signal.aborted;
}
