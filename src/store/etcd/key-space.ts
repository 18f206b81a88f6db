import { Buffer } from 'node:buffer';
import { AgentError } from '../../errors/index.js';

/**
 * Our keys live under a namespace in etcd (`/nsm-agent/` by default) so several meshes, or other
 * applications, can share one etcd. Keys are UTF-8; ranges use etcd's "prefix end" convention.
 */
export class KeySpace {
  readonly namespace: string;
  readonly #ns: Buffer;

  constructor(namespace: string) {
    if (namespace.length === 0) {
      throw new AgentError('CONFIG_INVALID', 'the etcd key namespace is empty', {
        hint: 'use a prefix such as /nsm-agent/ so the mesh keeps to its own keys',
      });
    }
    this.namespace = namespace;
    this.#ns = Buffer.from(namespace, 'utf8');
  }

  encode(key: string): Uint8Array {
    return Buffer.concat([this.#ns, Buffer.from(key, 'utf8')]);
  }

  /** Our key for an etcd key; undefined for a key outside the namespace (never asked for). */
  decode(bytes: Uint8Array): string | undefined {
    const b = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    if (b.length < this.#ns.length || !b.subarray(0, this.#ns.length).equals(this.#ns)) return undefined;
    return b.toString('utf8', this.#ns.length);
  }

  /** The etcd range [key, rangeEnd) holding exactly our keys that start with `prefix`. */
  range(prefix: string): { readonly key: Uint8Array; readonly rangeEnd: Uint8Array } {
    const key = this.encode(prefix);
    return { key, rangeEnd: prefixEnd(key) };
  }
}

/** The smallest key greater than every key starting with `prefix` ("\0" = to the end). */
export function prefixEnd(prefix: Uint8Array): Uint8Array {
  for (let i = prefix.length - 1; i >= 0; i--) {
    if ((prefix[i] as number) < 0xff) {
      const end = Uint8Array.from(prefix.subarray(0, i + 1));
      end[i] = (end[i] as number) + 1;
      return end;
    }
  }
  return Uint8Array.of(0);
}
