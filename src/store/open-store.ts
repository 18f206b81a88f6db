import { AgentError } from '../errors/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import { EmbeddedStore } from './embedded-store.js';
import { EtcdStore } from './etcd-store.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /** The embedded store's directory (e.g. `<server data dir>/store`), used unless `spec` names etcd. */
  readonly embeddedDir: string;
  readonly log?: Logger;
  readonly clock?: Clock;
}

const FORMS = 'use "embedded" (the default: a directory in the data dir) or etcd://host:port';

/**
 * Opens the store a `--store` value names: absent or `embedded` → the embedded store in
 * `embeddedDir`; `etcd://host:port` → etcd (shared by several servers). Anything else is
 * CONFIG_INVALID naming the accepted forms.
 */
export async function openStore(spec: string | undefined, options: OpenStoreOptions): Promise<Store> {
  const common = {
    ...(options.log ? { log: options.log } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  };
  if (spec === undefined || spec === '' || spec === 'embedded') {
    return EmbeddedStore.open({ dir: options.embeddedDir, ...common });
  }
  if (spec.startsWith('etcd://') || spec.startsWith('etcds://')) {
    return EtcdStore.open({ url: spec, ...common });
  }
  throw new AgentError('CONFIG_INVALID', `unknown store "${spec}"`, { hint: FORMS });
}
