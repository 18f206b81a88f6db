import type { ChainElement } from '../core/element.js';
import { updatePathServer } from './server.js';

/**
 * updatepath client: the same rules on the outgoing side (NSM's client and server share them), so a
 * hop that calls the next one (nsmgr → forwarder → remote agent) owns a segment and keeps its own id
 * when the reply comes back.
 */
export function updatePathClient(name: string): ChainElement {
  return updatePathServer(name);
}
