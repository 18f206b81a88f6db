import { AgentError } from '../errors/index.js';
import type { Clock } from '../host/index.js';
import type { Logger } from '../log/index.js';
import { EmbeddedStore } from './embedded-store.js';
import { EtcdStore } from './etcd-store.js';
import type { EtcdTlsFiles } from './etcd/etcd-tls.js';
import type { Store } from './store.js';

export interface OpenStoreOptions {
  /** The embedded store's directory (e.g. `<server data dir>/store`), used unless `spec` names etcd. */
  readonly embeddedDir: string;
  /** TLS files for an `etcds://` store (`--store-ca`, `--store-cert`, `--store-key`); refused for any other store. */
  readonly etcdTls?: EtcdTlsFiles;
  readonly log?: Logger;
  readonly clock?: Clock;
}

const FORMS =
  'use "embedded" (the default: a directory in the data dir), etcds://host:port[,host:port…] ' +
  '(TLS, with --store-ca) or etcd://127.0.0.1:PORT (plaintext, loopback only)';

/**
 * Opens the store a `--store` value names: absent or `embedded` → the embedded store in
 * `embeddedDir`; `etcds://…` or `etcd://…` → etcd (shared by several servers). Anything else is
 * CONFIG_INVALID naming the accepted forms.
 */
export async function openStore(spec: string | undefined, options: OpenStoreOptions): Promise<Store> {
  const common = {
    ...(options.log ? { log: options.log } : {}),
    ...(options.clock ? { clock: options.clock } : {}),
  };
  if (spec === undefined || spec === '' || spec === 'embedded') {
    if (options.etcdTls !== undefined) {
      throw new AgentError(
        'CONFIG_INVALID',
        '--store-ca/--store-cert/--store-key apply to an etcds:// store, and the store is embedded',
        { hint: 'add --store etcds://host:port, or leave the TLS files out' },
      );
    }
    return EmbeddedStore.open({ dir: options.embeddedDir, ...common });
  }
  if (spec.startsWith('etcd://') || spec.startsWith('etcds://')) {
    return EtcdStore.open({ url: spec, ...common, ...(options.etcdTls ? { tls: options.etcdTls } : {}) });
  }
  throw new AgentError('CONFIG_INVALID', `unknown store "${spec}"`, { hint: FORMS });
}
