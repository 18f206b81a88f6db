import { mkdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { ConnectionSchema, fromBinary, packedBytes, packEncoded, packMessage } from '../../api/index.js';
import type { Connection, PackedMessage } from '../../api/index.js';
import { ContextKey } from '../../chain/index.js';
import type { ChainContext } from '../../chain/index.js';
import { AgentError, describe } from '../../errors/index.js';
import type { Logger } from '../../log/index.js';
import { SECRET_FILE_MODE, writeFileAtomic } from '../../host/index.js';
import type { DesiredEntry } from '../../forwarder/index.js';

/**
 * The connection journal (`<stateDir>/agent/connections.json`): what the daemon needs to come back
 * after a kill -9 or a restart to the same connections and the same data plane (DESIGN §7, "nothing
 * of value lives only in memory"):
 *  - `entries`: the forwarder's desired entries, so the restarted forwarder adopts exactly what
 *    runs instead of removing it;
 *  - `clients`: the last connection returned for each of our own connects, so the restart refreshes
 *    them with the same path and ids (the remote side sees a refresh, not a new connection);
 *  - `served`: connections this agent serves for remote clients, with their expiry, so entries of a
 *    client that never comes back are removed when its token would have expired;
 *  - `remotes`: the remote agent URL of each forwarded connection, so Close reaches it even when the
 *    registry no longer has the endpoint.
 * Written atomically (0600: it names peers and addresses) after every change, before the change is
 * reported as done.
 */
export interface JournalData {
  readonly entries: Map<string, DesiredEntry>;
  readonly clients: Map<string, Connection>;
  readonly served: Map<string, { readonly expiresAtMs: number }>;
  readonly remotes: Map<string, string>;
}

interface JournalFile {
  readonly version: number;
  readonly entries: Record<string, DesiredEntry>;
  /** Connection protobufs, base64. */
  readonly clients: Record<string, string>;
  readonly served: Record<string, { readonly expiresAtMs: number }>;
  readonly remotes: Record<string, string>;
}

export function journalPath(stateDir: string): string {
  return join(stateDir, 'agent', 'connections.json');
}

export class Journal {
  readonly data: JournalData;
  readonly #path: string;
  /**
   * The encoded form of each client connection written or read so far. Every write holds all of
   * them, and encoding a Connection is the costly part (200 connections: ~5 ms of protobuf per
   * write, once per connect): a connection is encoded once, when it is first written. Sound
   * because the journal's connections are never changed in place — a refresh stores a new object.
   * Kept as bytes (PackedMessage, ~1.5 KB a connection), not as the file's base64 (a third more,
   * for as long as the connection lives); base64 of them all costs a write 0.4–1 ms per 200.
   */
  readonly #encoded = new WeakMap<Connection, PackedMessage<typeof ConnectionSchema>>();
  /** The journal's directory exists (made by the first write). */
  #dirMade = false;
  #draining = false;
  /** Flushes asked for / covered by a finished write (monotonic generations). */
  #requested = 0;
  #written = 0;
  #waiters: { want: number; resolve: () => void; reject: (e: unknown) => void }[] = [];
  /** Writes begun (each numbered; one at a time) / the last that reached the disk. */
  #started = 0;
  #okThrough = 0;
  #sinceWaiters: { mark: number; resolve: () => void; reject: (e: unknown) => void }[] = [];

  private constructor(
    path: string,
    data: JournalData,
    encoded?: ReadonlyMap<Connection, PackedMessage<typeof ConnectionSchema>>,
  ) {
    this.#path = path;
    this.data = data;
    for (const [c, text] of encoded ?? []) this.#encoded.set(c, text);
  }

  /** Reads the journal; none yet is empty. A journal that cannot be understood is an error, not a guess. */
  static async open(stateDir: string): Promise<Journal> {
    const path = journalPath(stateDir);
    let text: string;
    try {
      text = await readFile(path, 'utf8');
    } catch (e: unknown) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT')
        return new Journal(path, {
          entries: new Map(),
          clients: new Map(),
          served: new Map(),
          remotes: new Map(),
        });
      throw new AgentError(
        'FAILED_PRECONDITION',
        `cannot read the connection journal ${path}: ${describe(e)}`,
        {
          cause: e,
          hint: 'check the permissions of the state directory (the agent runs as root)',
        },
      );
    }
    let file: JournalFile;
    try {
      file = JSON.parse(text) as JournalFile;
      if (file.version !== 1) throw new Error(`unknown version ${String(file.version)}`);
      const clients = new Map<string, Connection>();
      const encoded = new Map<Connection, PackedMessage<typeof ConnectionSchema>>();
      for (const [k, v] of Object.entries(file.clients)) {
        const bytes = Buffer.from(v, 'base64');
        const c = fromBinary(ConnectionSchema, bytes);
        clients.set(k, c);
        encoded.set(c, packEncoded(ConnectionSchema, bytes));
      }
      return new Journal(
        path,
        {
          entries: new Map(Object.entries(file.entries)),
          clients,
          served: new Map(Object.entries(file.served)),
          remotes: new Map(Object.entries(file.remotes)),
        },
        encoded,
      );
    } catch (e: unknown) {
      throw new AgentError(
        'FAILED_PRECONDITION',
        `the connection journal ${path} is damaged: ${describe(e)}`,
        {
          cause: e,
          hint: `move it away and start again (connections are then set up anew): mv ${path} ${path}.bad`,
        },
      );
    }
  }

  /**
   * Writes the current data. Calls that arrive while a write runs share the next one; each call
   * resolves as soon as a write that began after it is on disk — never later, so connections set up
   * together do not all wait until the last of them is written (a convoy: 20 concurrent connects
   * finished together at ~360 ms).
   */
  flush(): Promise<void> {
    const want = ++this.#requested;
    const done = new Promise<void>((resolve, reject) => this.#waiters.push({ want, resolve, reject }));
    this.#kick();
    return done;
  }

  /**
   * Writes what a failed request undid; a failed write is logged, not thrown, so the caller reports
   * the request's own error (the journal on disk may still hold the undone change until a later write).
   */
  async flushAfterFailedRequest(log: Logger): Promise<void> {
    await this.flush().catch((e: unknown) => {
      log.warn(
        {
          err: describe(e),
          hint: 'check that the state dir is writable and the disk not full; the next write records it',
        },
        'cannot journal what a failed request undid',
      );
    });
  }

  /**
   * A change made in `ctx`: written now, or by the edge of its request when that is still running
   * (journalAtEdge).
   */
  async flushUnlessAtEdge(ctx: ChainContext | undefined): Promise<void> {
    if (!journaledAtEdge(ctx)) await this.flush();
  }

  /**
   * A mark for flushSince(): a change made to `data` before taking it is in every write that starts
   * after it.
   */
  mark(): number {
    return this.#started;
  }

  /**
   * Resolves once the data as it was at `mark` is on disk: at once when a write that began after the
   * mark has finished, when that write finishes when one is running, else after a flush() of its own.
   * For a change made before a call that journals anyway (the data plane's entries): the change
   * rides on that write instead of waiting for one more after it. Rejects when that write fails.
   */
  flushSince(mark: number): Promise<void> {
    if (this.#okThrough > mark) return Promise.resolve();
    if (this.#started > mark) {
      return new Promise<void>((resolve, reject) => this.#sinceWaiters.push({ mark, resolve, reject }));
    }
    return this.flush();
  }

  /** Settles the flushSince() callers whose mark write `id` covers. */
  #settleSince(id: number, error?: unknown): void {
    const covered = this.#sinceWaiters.filter((w) => w.mark < id);
    this.#sinceWaiters = this.#sinceWaiters.filter((w) => w.mark >= id);
    for (const w of covered) {
      if (error === undefined) w.resolve();
      else w.reject(error);
    }
  }

  #kick(): void {
    if (this.#draining) return;
    this.#draining = true;
    void this.#drain().finally(() => {
      this.#draining = false;
      // A flush that came between the loop's last check and here.
      if (this.#written < this.#requested) this.#kick();
    });
  }

  async #drain(): Promise<void> {
    while (this.#written < this.#requested) {
      const gen = this.#requested;
      // #write() takes its copy of the data before its first await: this write holds every change
      // made before this line.
      const id = ++this.#started;
      try {
        await this.#write();
      } catch (e: unknown) {
        // Everyone waiting now hears the failure; a later flush tries again.
        for (const w of this.#waiters.splice(0)) w.reject(e);
        this.#settleSince(id, e);
        this.#written = gen;
        continue;
      }
      this.#okThrough = id;
      this.#settleSince(id);
      this.#written = gen;
      const ready = this.#waiters.filter((w) => w.want <= gen);
      this.#waiters = this.#waiters.filter((w) => w.want > gen);
      for (const w of ready) w.resolve();
    }
  }

  async #write(): Promise<void> {
    const file: JournalFile = {
      version: 1,
      entries: Object.fromEntries(this.data.entries),
      clients: Object.fromEntries([...this.data.clients].map(([k, c]) => [k, this.#encode(c)])),
      served: Object.fromEntries(this.data.served),
      remotes: Object.fromEntries(this.data.remotes),
    };
    const text = JSON.stringify(file);
    if (!this.#dirMade) await this.#makeDir();
    try {
      await writeFileAtomic(this.#path, text, SECRET_FILE_MODE);
    } catch (e: unknown) {
      // The directory was removed under the running agent: make it again, once, and retry.
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
      await this.#makeDir();
      await writeFileAtomic(this.#path, text, SECRET_FILE_MODE);
    }
  }

  async #makeDir(): Promise<void> {
    await mkdir(dirname(this.#path), { recursive: true, mode: 0o700 });
    this.#dirMade = true;
  }

  #encode(c: Connection): string {
    let packed = this.#encoded.get(c);
    if (packed === undefined) {
      packed = packMessage(ConnectionSchema, c);
      this.#encoded.set(c, packed);
    }
    return packedBytes(packed).toString('base64');
  }
}

/**
 * One journal write per request, at its edge. A connect changes the journal in several elements on
 * its way back up — where the connection went (remote-dial), the data plane's entries, what is
 * served, the connection itself — and each wrote the whole journal, fsync'd, before the next could
 * go on: three writes in series on the client's agent for every connect. Inside `run`, those
 * elements only change `data`; the edge writes once when the request (or close) is done, before the
 * caller hears the answer, so what a caller was told is up still survives a kill -9. A context kept
 * for later (heal, an event of begin) sees the edge closed and writes its own changes again.
 */
export async function journalAtEdge<T>(
  journal: Journal,
  ctx: ChainContext,
  run: (ctx: ChainContext) => Promise<T>,
  o: { readonly writes: boolean } = { writes: true },
): Promise<T> {
  const edge = { open: true };
  let out: T;
  try {
    out = await run(ctx.with(edgeKey, edge));
  } catch (e: unknown) {
    edge.open = false;
    // What the failed request undid: the journal on disk may hold some of it (another write ran).
    if (o.writes) await journal.flushAfterFailedRequest(ctx.log);
    throw e;
  }
  edge.open = false;
  if (o.writes) await journal.flush();
  return out;
}

/** Whether a change made in `ctx` is written by the edge of its request (still running). */
export function journaledAtEdge(ctx: ChainContext | undefined): boolean {
  return ctx?.get(edgeKey)?.open === true;
}

const edgeKey = new ContextKey<{ open: boolean }>('daemon/journal written at the request edge');
