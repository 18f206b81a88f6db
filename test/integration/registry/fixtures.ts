// A registry served over real gRPC with mTLS on loopback, and clients that talk to it the way
// upstream NSM components do (nsm-client-token + path metadata), for the registry integration tests.
import type { ExecutionContext } from 'ava';
import { Client, Metadata } from '@grpc/grpc-js';
import type { ServiceError } from '@grpc/grpc-js';
import type { DescMessage, MessageInitShape, MessageShape } from '../../../src/api/index.js';
import type { Empty, NetworkService, NetworkServiceEndpoint } from '../../../src/api/index.js';
import {
  EmptySchema,
  NetworkServiceEndpointRegistryService,
  NetworkServiceEndpointSchema,
  NetworkServiceRegistryService,
  NetworkServiceSchema,
} from '../../../src/api/index.js';
import {
  clientCredentials,
  deserializerFor,
  dial,
  dialTarget,
  parseGrpcUrl,
  serializerFor,
  serverCredentials,
  startServer,
} from '../../../src/api/grpc/index.js';
import type { GrpcServer, ServiceClient } from '../../../src/api/grpc/index.js';
import { createTokenSigner, writeClientToken } from '../../../src/api/token/index.js';
import type { TokenSigner } from '../../../src/api/token/index.js';
import type { Clock } from '../../../src/host/index.js';
import { createLogger } from '../../../src/log/index.js';
import type { Logger } from '../../../src/log/index.js';
import { createRegistryServices } from '../../../src/registry/index.js';
import type { RegistryPolicy } from '../../../src/registry/index.js';
import type { Store } from '../../../src/store/index.js';
import { MemoryStore } from '../../../src/store/index.js';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { issueToolIdentity } from '../../../src/identity/index.js';
import type { MeshCa } from '../../../src/identity/index.js';
import { createTestCa, issueSvid } from '../../helpers/pki.js';
import type { TestCa, TestSvid } from '../../helpers/pki.js';

export const TD = 'mesh.test';
export const SERVER_ID = `spiffe://${TD}/server`;
export const AGENT_A = `spiffe://${TD}/agent/host-a`;
export const AGENT_B = `spiffe://${TD}/agent/host-b`;
export const FIRST_PATH = '{"Index":0,"PathSegments":null}';

export interface Mesh {
  readonly ca: TestCa;
  readonly server: TestSvid;
  readonly a: TestSvid;
  readonly b: TestSvid;
}

let cached: Promise<Mesh> | undefined;
/** One PKI per test file (key generation is the slow part). */
export function mesh(): Promise<Mesh> {
  cached ??= (async () => {
    const ca = await createTestCa(TD);
    return {
      ca,
      server: await issueSvid(ca, SERVER_ID),
      a: await issueSvid(ca, AGENT_A),
      b: await issueSvid(ca, AGENT_B),
    };
  })();
  return cached;
}

/** A logger whose lines the test can read (to check that nothing secret is logged). */
export function capturingLogger(): { log: Logger; text: () => string } {
  const raw: string[] = [];
  const log = createLogger({ level: 'debug', destination: { write: (s: string) => void raw.push(s) } });
  return { log, text: () => raw.join('') };
}

export interface RegistryFixture {
  readonly url: string;
  readonly store: Store;
  readonly server: GrpcServer;
}

export interface StartOptions {
  readonly clock: Clock;
  readonly store?: Store;
  readonly log?: Logger;
  readonly policies?: readonly RegistryPolicy[];
  readonly defaultExpirationMs?: number;
  readonly maxReceiveMessageBytes?: number;
  /** false: server-authenticated TLS only, so calls arrive without a client identity. */
  readonly requireClientCert?: boolean;
}

export async function startRegistry(t: ExecutionContext, options: StartOptions): Promise<RegistryFixture> {
  const m = await mesh();
  const store = options.store ?? new MemoryStore({ clock: options.clock });
  const log = options.log ?? createLogger({ level: 'silent' });
  const signer = createTokenSigner({
    spiffeId: SERVER_ID,
    certificatePem: m.server.certPem,
    privateKeyPem: m.server.keyPem,
    clock: options.clock,
  });
  const registry = createRegistryServices({
    store,
    clock: options.clock,
    log,
    signer,
    ...(options.policies ? { policies: options.policies } : {}),
    ...(options.defaultExpirationMs === undefined
      ? {}
      : { defaultExpirationMs: options.defaultExpirationMs }),
  });
  const server = await startServer({
    listen: [
      {
        url: 'tcp://127.0.0.1:0',
        credentials: serverCredentials({
          bundlePem: m.ca.certPem,
          certChainPem: m.server.chainPem,
          keyPem: m.server.keyPem,
          requireClientCert: options.requireClientCert ?? true,
        }),
      },
    ],
    services: registry.services,
    log,
    ...(options.maxReceiveMessageBytes === undefined
      ? {}
      : { tuning: { maxReceiveMessageBytes: options.maxReceiveMessageBytes } }),
  });
  t.teardown(async () => {
    await server.close({ graceMs: 50 });
    registry.close();
    if (!options.store) await store.close();
  });
  return { url: server.address, store, server };
}

export interface UnaryResult<T> {
  readonly response: T;
  /** The `path` response header, if the server sent one. */
  readonly path: string | undefined;
}

/** What a call sends besides the message. */
export interface CallMetadata {
  /** false: no nsm-client-token; a string: that token instead of a fresh one. */
  readonly token?: false | string;
  /** false: no path metadata; default: the first-call path. */
  readonly path?: false | string;
  /** Token audience; default the server's SPIFFE ID. */
  readonly audience?: string;
}

/**
 * A tool identity as `nsm-agent server issue` writes it (into `<dir>/tool`), read back in the shapes
 * RegistryClient takes: the SVID and the trust bundle.
 */
export async function toolIdentity(
  ca: MeshCa,
  dir: string,
  name: string,
): Promise<{
  svid: Pick<TestSvid, 'spiffeId' | 'certPem' | 'chainPem' | 'keyPem'>;
  bundle: Pick<TestCa, 'certPem'>;
}> {
  const files = await issueToolIdentity({
    ca,
    spiffeId: `spiffe://${TD}/tool/${name}`,
    outDir: join(dir, 'tool'),
  });
  const certPem = await readFile(files.certPath, 'utf8');
  return {
    svid: {
      spiffeId: files.spiffeId,
      certPem,
      chainPem: certPem,
      keyPem: await readFile(files.keyPath, 'utf8'),
    },
    bundle: { certPem: await readFile(files.bundlePath, 'utf8') },
  };
}

/**
 * A registry client for one identity: typed clients for Find, and Register/Unregister through the
 * raw grpc-js client so tests can read the `path` response header.
 */
export class RegistryClient {
  readonly ns: ServiceClient<typeof NetworkServiceRegistryService>;
  readonly nse: ServiceClient<typeof NetworkServiceEndpointRegistryService>;
  readonly signer: TokenSigner;
  readonly #raw: Client;

  constructor(
    t: ExecutionContext,
    url: string,
    svid: Pick<TestSvid, 'spiffeId' | 'certPem' | 'chainPem' | 'keyPem'>,
    ca: Pick<TestCa, 'certPem'>,
    clock: Clock,
  ) {
    const credentials = clientCredentials({
      bundlePem: ca.certPem,
      certChainPem: svid.chainPem,
      keyPem: svid.keyPem,
      expectedServerId: SERVER_ID,
    });
    const conn = dial(url, { credentials, defaultTimeoutMs: 5_000 });
    t.teardown(() => conn.close());
    this.ns = conn.client(NetworkServiceRegistryService);
    this.nse = conn.client(NetworkServiceEndpointRegistryService);
    // A fixed TLS server name, as dial() sends for IP literals (an IP there is DEP0123).
    this.#raw = new Client(dialTarget(parseGrpcUrl(url)), credentials.grpc, {
      'grpc.ssl_target_name_override': 'nsm-agent.invalid',
    });
    t.teardown(() => this.#raw.close());
    this.signer = createTokenSigner({
      spiffeId: svid.spiffeId,
      certificatePem: svid.certPem,
      privateKeyPem: svid.keyPem,
      clock,
    });
  }

  metadata(options: CallMetadata = {}): Metadata {
    const md = new Metadata();
    if (options.token !== false) {
      const minted = this.signer.mint({ spiffeId: options.audience ?? SERVER_ID });
      writeClientToken(md, typeof options.token === 'string' ? { ...minted, token: options.token } : minted);
    }
    if (options.path !== false) md.set('path', options.path ?? FIRST_PATH);
    return md;
  }

  call<I extends DescMessage, O extends DescMessage>(
    path: string,
    input: I,
    output: O,
    request: MessageInitShape<I>,
    options: CallMetadata = {},
  ): Promise<UnaryResult<MessageShape<O>>> {
    return new Promise((resolve, reject) => {
      let header: string | undefined;
      const call = this.#raw.makeUnaryRequest(
        path,
        serializerFor(input),
        deserializerFor(output),
        request,
        this.metadata(options),
        { deadline: new Date(Date.now() + 5_000) },
        (err: ServiceError | null, response?: MessageShape<O>) => {
          if (err) reject(err);
          else if (response) resolve({ response, path: header });
          else reject(new Error('no response'));
        },
      );
      call.on('metadata', (md: Metadata) => {
        const v = md.get('path')[0];
        header = typeof v === 'string' ? v : undefined;
      });
    });
  }

  /** Sends `bytes` as the request message as they are (malformed protobuf, oversized messages). */
  callRaw(path: string, bytes: Uint8Array, options: CallMetadata = {}): Promise<Buffer> {
    return new Promise((resolve, reject) => {
      this.#raw.makeUnaryRequest(
        path,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        bytes,
        this.metadata(options),
        { deadline: new Date(Date.now() + 10_000) },
        (err: ServiceError | null, response?: Buffer) => {
          if (err) reject(err);
          else resolve(response ?? Buffer.alloc(0));
        },
      );
    });
  }

  /** A server-streaming call with raw request bytes; resolves with the number of responses. */
  findRaw(path: string, bytes: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      const call = this.#raw.makeServerStreamRequest(
        path,
        (b: Uint8Array) => Buffer.from(b),
        (b: Buffer) => b,
        bytes,
        this.metadata({ token: false, path: false }),
        { deadline: new Date(Date.now() + 5_000) },
      );
      let n = 0;
      call.on('data', () => n++);
      call.on('error', reject);
      call.on('end', () => resolve(n));
    });
  }

  registerNse(
    nse: MessageInitShape<typeof NetworkServiceEndpointSchema>,
    options?: CallMetadata,
  ): Promise<UnaryResult<NetworkServiceEndpoint>> {
    const path = '/registry.NetworkServiceEndpointRegistry/Register';
    return this.call(path, NetworkServiceEndpointSchema, NetworkServiceEndpointSchema, nse, options);
  }

  unregisterNse(
    nse: MessageInitShape<typeof NetworkServiceEndpointSchema>,
    options?: CallMetadata,
  ): Promise<UnaryResult<Empty>> {
    const path = '/registry.NetworkServiceEndpointRegistry/Unregister';
    return this.call(path, NetworkServiceEndpointSchema, EmptySchema, nse, options);
  }

  registerNs(
    ns: MessageInitShape<typeof NetworkServiceSchema>,
    options?: CallMetadata,
  ): Promise<UnaryResult<NetworkService>> {
    return this.call(
      '/registry.NetworkServiceRegistry/Register',
      NetworkServiceSchema,
      NetworkServiceSchema,
      ns,
      options,
    );
  }

  unregisterNs(
    ns: MessageInitShape<typeof NetworkServiceSchema>,
    options?: CallMetadata,
  ): Promise<UnaryResult<Empty>> {
    return this.call(
      '/registry.NetworkServiceRegistry/Unregister',
      NetworkServiceSchema,
      EmptySchema,
      ns,
      options,
    );
  }
}

/** Every response of a finite (watch=false) Find. */
export async function all<T>(stream: AsyncIterable<T>): Promise<T[]> {
  const out: T[] = [];
  for await (const r of stream) out.push(r);
  return out;
}

/**
 * A watch stream read in the background into a queue, so a test can wait for the next responses
 * (bounded) or check that nothing came, without losing responses between the two.
 */
export class Watch<T> {
  readonly #queue: T[] = [];
  readonly #stream: AsyncIterable<T> & { cancel(): void };
  #failure: unknown;
  #ended = false;
  #wake: (() => void) | undefined;

  constructor(stream: AsyncIterable<T> & { cancel(): void }) {
    this.#stream = stream;
    void this.#pump();
  }

  async #pump(): Promise<void> {
    try {
      for await (const r of this.#stream) {
        this.#queue.push(r);
        this.#wake?.();
      }
    } catch (e: unknown) {
      this.#failure = e;
    }
    this.#ended = true;
    this.#wake?.();
  }

  /** The next `count` responses, waiting at most `timeoutMs`. */
  async take(count: number, timeoutMs = 3_000): Promise<T[]> {
    const deadline = Date.now() + timeoutMs;
    while (this.#queue.length < count) {
      if (this.#ended)
        throw new Error(
          `stream ended after ${this.#queue.length} of ${count} responses (${String(this.#failure)})`,
        );
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out with ${this.#queue.length} of ${count} responses`);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, left);
        this.#wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    return this.#queue.splice(0, count);
  }

  /** True when nothing arrives within `ms`. */
  async quiet(ms: number): Promise<boolean> {
    await new Promise((r) => setTimeout(r, ms));
    return this.#queue.length === 0;
  }

  /** The error the stream ended with, once it ended. */
  async failure(timeoutMs = 3_000): Promise<unknown> {
    const deadline = Date.now() + timeoutMs;
    while (!this.#ended && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    return this.#failure;
  }

  cancel(): void {
    this.#stream.cancel();
  }
}
