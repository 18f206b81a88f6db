import { randomBytes } from 'node:crypto';
import { isIP } from 'node:net';
import { chown, mkdir, open, readFile, rename, rm, stat } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { AgentError } from '../errors/index.js';

/** The system hosts file; a network namespace's own is /etc/netns/<ns>/hosts (`ip netns exec` mounts it). */
export const defaultHostsPath = '/etc/hosts';
export const hostsBlockBegin = '# BEGIN nsm-agent (managed; do not edit)';
export const hostsBlockEnd = '# END nsm-agent';

export interface HostsEntry {
  readonly address: string;
  readonly names: readonly string[];
}

export interface HostsFileOptions {
  /**
   * What a missing file starts as before the block is added (e.g. the lines of /etc/hosts for a
   * netns hosts file, which replaces /etc/hosts inside the namespace). Default: empty.
   */
  readonly initial?: string;
  /**
   * Rewrite an existing file through its inode instead of renaming a new one over it. For
   * /etc/netns/<ns>/hosts: `ip netns exec` bind-mounts it over /etc/hosts when a process starts,
   * and a mount keeps the inode it was given, so a renamed-over file never reaches processes that
   * are already running. Readers may see a half-written file for an instant. Default: false.
   */
  readonly inPlace?: boolean;
}

// Hosts files are bytes, not necessarily UTF-8: latin1 maps every byte to one char and back, so
// lines we do not own are written back exactly as read.
const encoding = 'latin1';
const hostnamePattern = /^[A-Za-z0-9](?:[A-Za-z0-9_.-]*[A-Za-z0-9])?$/;

/**
 * One marked block in a hosts file, owned by the agent: the names of services it connects to
 * (`web.nsm`). `set` is declarative and idempotent (Tailscale's `Router.Set` style): it rewrites
 * only the block, leaves every other line as it was, and does not write when nothing changes.
 * Writes are atomic (temp file in the same directory, same mode and owner, rename), except where
 * the file is a mount point (a container's /etc/hosts), which cannot be renamed over: that one is
 * rewritten in place.
 */
export class HostsFile {
  readonly path: string;
  readonly #initial: string;
  readonly #inPlace: boolean;
  #queue: Promise<unknown> = Promise.resolve();

  constructor(path: string = defaultHostsPath, options: HostsFileOptions = {}) {
    this.path = path;
    this.#initial = options.initial ?? '';
    this.#inPlace = options.inPlace ?? false;
  }

  /** Makes the block hold exactly `entries` (no block when empty). True when the file was written. */
  async set(entries: readonly HostsEntry[]): Promise<boolean> {
    const lines = entries.map(entryLine);
    const run = this.#queue.then(() => this.#set(lines));
    this.#queue = run.catch(() => undefined);
    return await run;
  }

  /** What the block holds now (empty when there is none or the file does not exist). */
  async entries(): Promise<HostsEntry[]> {
    const content = await this.#read();
    return parseHostsBlock(content ?? '');
  }

  async #set(lines: readonly string[]): Promise<boolean> {
    const current = await this.#read();
    if (current === undefined && lines.length === 0) return false;
    const before = current ?? this.#initial;
    const after = renderHostsBlock(before, lines, this.path);
    if (current !== undefined && after === current) return false;
    await this.#write(after, current !== undefined);
    return true;
  }

  async #read(): Promise<string | undefined> {
    try {
      return await readFile(this.path, encoding);
    } catch (e: unknown) {
      if (errnoOf(e) === 'ENOENT') return undefined;
      throw fileError(e, `cannot read the hosts file ${this.path}`, this.path);
    }
  }

  async #write(content: string, exists: boolean): Promise<void> {
    const dir = dirname(this.path);
    let mode = 0o644;
    let owner: { uid: number; gid: number } | undefined;
    try {
      if (exists && this.#inPlace) {
        await this.#writeInPlace(content);
        return;
      }
      if (exists) {
        const st = await stat(this.path);
        mode = st.mode & 0o7777;
        owner = { uid: st.uid, gid: st.gid };
      } else {
        await mkdir(dir, { recursive: true, mode: 0o755 });
      }
      const tmp = join(dir, `.${basename(this.path)}.nsm-agent.${randomBytes(6).toString('hex')}.tmp`);
      const file = await open(tmp, 'wx', mode);
      try {
        await file.writeFile(content, encoding);
        await file.chmod(mode);
        if (owner) await chown(tmp, owner.uid, owner.gid).catch(ignoreIfNotPermitted);
        await file.sync();
      } catch (e: unknown) {
        await file.close();
        await rm(tmp, { force: true });
        throw e;
      }
      await file.close();
      try {
        await rename(tmp, this.path);
      } catch (e: unknown) {
        await rm(tmp, { force: true });
        // A bind-mounted file (Docker's /etc/hosts) cannot be replaced; write through it instead.
        if (errnoOf(e) !== 'EBUSY') throw e;
        await this.#writeInPlace(content);
      }
    } catch (e: unknown) {
      throw fileError(e, `cannot write the hosts file ${this.path}`, this.path);
    }
  }

  async #writeInPlace(content: string): Promise<void> {
    const file = await open(this.path, 'r+');
    try {
      const data = Buffer.from(content, encoding);
      await file.write(data, 0, data.length, 0);
      await file.truncate(data.length);
      await file.sync();
    } finally {
      await file.close();
    }
  }
}

/**
 * The file's content with the block replaced by `lines` (removed when there are none); pure.
 * The block stays where it was; a new one goes at the end. Several blocks (a hand-made copy) become one.
 */
export function renderHostsBlock(content: string, lines: readonly string[], path = 'the hosts file'): string {
  const endsWithNewline = content.endsWith('\n');
  const body = content === '' ? [] : (endsWithNewline ? content.slice(0, -1) : content).split('\n');
  const kept: string[] = [];
  let at: number | undefined;
  for (let i = 0; i < body.length; i++) {
    if (!isMarker(body[i], hostsBlockBegin)) {
      kept.push(body[i] ?? '');
      continue;
    }
    let j = i + 1;
    while (j < body.length && !isMarker(body[j], hostsBlockEnd)) j++;
    if (j === body.length) {
      throw new AgentError(
        'FAILED_PRECONDITION',
        `${path} has "${hostsBlockBegin}" at line ${i + 1} but no "${hostsBlockEnd}" after it`,
        { hint: `remove the broken nsm-agent block from ${path} by hand; the agent writes it again` },
      );
    }
    at ??= kept.length;
    i = j;
  }
  const block = lines.length === 0 ? [] : [hostsBlockBegin, ...lines, hostsBlockEnd];
  const out = at === undefined ? [...kept, ...block] : [...kept.slice(0, at), ...block, ...kept.slice(at)];
  if (out.length === 0) return '';
  // Keep a missing final newline missing, unless our block is now the last line.
  const lastIsOurs = block.length > 0 && (at === undefined || at === kept.length);
  return out.join('\n') + (endsWithNewline || lastIsOurs ? '\n' : '');
}

/** The entries in the block of `content`. */
export function parseHostsBlock(content: string): HostsEntry[] {
  const entries: HostsEntry[] = [];
  let inside = false;
  for (const line of content.split('\n')) {
    if (isMarker(line, hostsBlockBegin)) inside = true;
    else if (isMarker(line, hostsBlockEnd)) inside = false;
    else if (inside) {
      const [address, ...names] = line.trim().split(/\s+/);
      if (address !== undefined && address !== '' && !address.startsWith('#'))
        entries.push({ address, names });
    }
  }
  return entries;
}

function isMarker(line: string | undefined, marker: string): boolean {
  return line?.trimEnd() === marker;
}

function entryLine(entry: HostsEntry): string {
  if (isIP(entry.address) === 0) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `hosts entry address ${JSON.stringify(entry.address)} is not an IP address`,
      {
        hint: 'give a bare IPv4 or IPv6 address, without a prefix length',
      },
    );
  }
  if (entry.names.length === 0) {
    throw new AgentError('INVALID_ARGUMENT', `hosts entry for ${entry.address} has no names`, {
      hint: 'give at least one host name, e.g. web.nsm',
    });
  }
  for (const name of entry.names) {
    if (name.length > 253 || !hostnamePattern.test(name)) {
      throw new AgentError('INVALID_ARGUMENT', `${JSON.stringify(name)} is not a host name`, {
        hint: 'use letters, digits, "-", "_" and ".", starting and ending with a letter or digit',
      });
    }
  }
  return `${entry.address}\t${entry.names.join(' ')}`;
}

function errnoOf(e: unknown): string | undefined {
  return typeof e === 'object' && e !== null && 'code' in e && typeof e.code === 'string'
    ? e.code
    : undefined;
}

function ignoreIfNotPermitted(e: unknown): void {
  // Only root may give a file away; a non-root agent writing its own file keeps its own owner.
  if (errnoOf(e) !== 'EPERM') throw e;
}

function fileError(e: unknown, message: string, path: string): AgentError {
  if (e instanceof AgentError) return e;
  const code = errnoOf(e);
  if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') {
    return AgentError.wrap(
      e,
      'PERMISSION_DENIED',
      message,
      `run the agent as root, or make ${path} (and its directory, for the atomic replace) writable by it`,
    );
  }
  return AgentError.wrap(
    e,
    'FAILED_PRECONDITION',
    message,
    `check that ${path} is a regular file the agent can read and write`,
  );
}
