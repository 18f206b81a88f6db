import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { lstat, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as sea from 'node:sea';
import { AgentError, describe } from '../../errors/index.js';

/** The UDP-buffer half of what the addon (native/udp-socket-buffers.c) exports. */
export interface UdpBuffersAddon {
  udpBuffers(
    pid: number,
    bytes: number,
  ): { fd: number; family: number; rcvbuf: number; sndbuf: number; changed: boolean }[];
}

/** Everything the addon exports: the UDP-buffer sizing and the AF_UNIX datagram for sd_notify. */
export interface NativeHelper extends UdpBuffersAddon {
  /**
   * Sends `message` as one datagram to the AF_UNIX socket `path` (absolute, or `@name` for an
   * abstract one); returns the bytes sent. Throws errors with `code` (errno name) and `syscall`.
   */
  notify(path: string, message: string): number;
}

/** An echo icmpSend could not send: its record, the errno, and "syscall: strerror". */
export interface IcmpSendFailure {
  readonly index: number;
  readonly errno: number;
  readonly message: string;
}

/**
 * The raw-ICMP half of the addon (native/icmp-liveness.c): echo requests out of given interfaces in
 * any network namespace, for the data-plane liveness check. One call sends every echo of a socket
 * and one drains its replies, through packed records (src/host/liveness/echo-records.ts, layout in
 * the C file), so a probe round makes no JS object per echo. All throw errors with `code` (errno
 * name) and `syscall`.
 */
export interface IcmpAddon {
  /** A non-blocking raw ICMP (4) or ICMPv6 (6) socket created in the netns of `netnsPath` (null: the agent's own). */
  icmpOpen(netnsPath: string | null, family: 4 | 6): number;
  /**
   * One echo request with `seq` per record 0 … count-1 of `table` (interface, source, destination,
   * 16-bit id; the socket's family), sent with sendmmsg; null when all went out, else the records
   * that failed (interface gone, source not local, …). Throws only when the socket is unusable.
   */
  icmpSend(fd: number, table: Uint8Array, count: number, seq: number): IcmpSendFailure[] | null;
  /**
   * Writes the echo replies queued on the socket (other ICMP types are filtered in the kernel,
   * other programs' echoes by a payload marker) into `out`, 5 words each (id | seq << 16, source
   * address); returns how many. Call again while it fills `out`; never blocks.
   */
  icmpReceive(fd: number, out: Uint32Array): number;
  icmpClose(fd: number): void;
}

/**
 * The process-memory half of the addon (native/process-memory.c), for the idle agent daemon
 * (src/cli/daemon-memory.ts).
 */
export interface ProcessMemoryAddon {
  /** glibc malloc_trim(0): free heap memory back to the OS; true when some was released. */
  mallocTrim(): boolean;
  /**
   * Drops this process's pages of the single binary's SEA blob (read once at start-up; a later
   * read faults them back in from the file); returns the bytes advised, 0 outside the binary.
   * Throws errors with `code` (errno name) and `syscall`.
   */
  releaseSeaBlob(): number;
  /**
   * Unmaps this process's pages of the main program's read-only segments (machine code, read-only
   * data; the single binary's Node/V8): start-up touched them, the idle agent mostly does not.
   * Clean file pages: what runs again faults back from the page cache. Returns the bytes advised.
   * Throws errors with `code` (errno name) and `syscall`.
   */
  releaseProgramPages(): number;
}

export interface NativeAddonOptions {
  /** A built addon to load (tests); default: the SEA asset inside the binary, else dist/native. */
  readonly path?: string;
  /** Where the binary writes its embedded addon before loading it (created 0700). */
  readonly extractDir?: string;
}

/** The name of the addon in the SEA's assets (packaging/build-binary.mjs) and in dist/native. */
export const addonAssetName = 'udp-socket-buffers.node';

/**
 * Loads the addon: from an explicit path; inside the single binary from its embedded asset, written
 * to a private directory under a content-hash name and checked against the asset's hash before it
 * is loaded; when running from the sources or the bundle, from dist/native (packaging/build-native.mjs).
 */
export async function loadNativeHelper(o: NativeAddonOptions = {}): Promise<NativeHelper> {
  const { exports, file } = await load(o);
  const { udpBuffers, notify } = exports;
  if (typeof udpBuffers !== 'function' || typeof notify !== 'function') throw notTheHelper(file);
  return { udpBuffers, notify };
}

/** Loads the addon for its ICMP functions (the liveness prober, src/host/liveness). */
export async function loadIcmpAddon(o: NativeAddonOptions = {}): Promise<IcmpAddon> {
  const { exports, file } = await load(o);
  const { icmpOpen, icmpSend, icmpReceive, icmpClose } = exports;
  if (
    typeof icmpOpen !== 'function' ||
    typeof icmpSend !== 'function' ||
    typeof icmpReceive !== 'function' ||
    typeof icmpClose !== 'function'
  ) {
    throw notTheHelper(file);
  }
  return { icmpOpen, icmpSend, icmpReceive, icmpClose };
}

/** Like loadNativeHelper, needing only udpBuffers (so an older build still sizes buffers). */
export async function loadUdpBuffersAddon(o: NativeAddonOptions = {}): Promise<UdpBuffersAddon> {
  const { exports, file } = await load(o);
  const udpBuffers = exports.udpBuffers;
  if (typeof udpBuffers !== 'function') throw notTheHelper(file);
  return { udpBuffers };
}

/** Loads the addon for its process-memory functions; throws when it is an older build without them. */
export async function loadProcessMemoryAddon(o: NativeAddonOptions = {}): Promise<ProcessMemoryAddon> {
  const { exports, file } = await load(o);
  const { mallocTrim, releaseSeaBlob, releaseProgramPages } = exports;
  if (
    typeof mallocTrim !== 'function' ||
    typeof releaseSeaBlob !== 'function' ||
    typeof releaseProgramPages !== 'function'
  ) {
    throw notTheHelper(file);
  }
  return { mallocTrim, releaseSeaBlob, releaseProgramPages };
}

type AddonExports = Partial<NativeHelper & IcmpAddon & ProcessMemoryAddon>;

async function load(o: NativeAddonOptions): Promise<{ exports: AddonExports; file: string }> {
  const file = o.path ?? (sea.isSea() ? await extracted(o.extractDir) : builtAddonPath());
  const m: { exports: AddonExports } = { exports: {} };
  try {
    process.dlopen(m, file);
  } catch (e: unknown) {
    throw new AgentError('UNAVAILABLE', `cannot load the native helper ${file}: ${describe(e)}`, {
      cause: e,
      hint: 'rebuild it (node packaging/build-native.mjs, or npm run build:binary)',
    });
  }
  return { exports: m.exports, file };
}

function notTheHelper(file: string): AgentError {
  return new AgentError(
    'UNAVAILABLE',
    `${file} is not the nsm-agent native helper, or an older build of it`,
    {
      hint: 'rebuild it (node packaging/build-native.mjs, or npm run build:binary)',
    },
  );
}

/** dist/native/<asset> next to the bundle (dist/nsm-agent.cjs), or under the checkout (tsx). */
function builtAddonPath(): string {
  const candidates = [
    new URL(`native/${addonAssetName}`, import.meta.url),
    new URL(`../../../dist/native/${addonAssetName}`, import.meta.url),
  ].map((u) => fileURLToPath(u));
  const found = candidates.find((c) => existsSync(c));
  if (found !== undefined) return found;
  throw new AgentError('UNAVAILABLE', `the native helper ${addonAssetName} is not built`, {
    hint: `build it with node packaging/build-native.mjs (needs gcc), or run the single binary, which embeds it; looked in ${candidates.join(', ')}`,
  });
}

function defaultExtractDir(): string {
  const uid = process.getuid?.() ?? -1;
  return uid === 0 ? '/run/nsm-agent/native' : join(tmpdir(), `nsm-agent-${uid}`, 'native');
}

/**
 * The embedded addon is written out once per directory and process: each later load reuses the
 * file, so the SEA blob is read only at start-up (the daemon drops its pages once ready).
 */
const extractions = new Map<string, Promise<string>>();

function extracted(dir = defaultExtractDir()): Promise<string> {
  let file = extractions.get(dir);
  if (file === undefined) {
    file = extractAsset(dir);
    extractions.set(dir, file);
    file.catch(() => extractions.delete(dir));
  }
  return file;
}

async function extractAsset(dir: string): Promise<string> {
  const bytes = Buffer.from(sea.getAsset(addonAssetName));
  const hash = sha256(bytes);
  await privateDir(dir);
  const file = join(dir, `udp-socket-buffers-${hash.slice(0, 16)}.node`);
  const have = await readFile(file).catch(() => undefined);
  if (have === undefined || sha256(have) !== hash) {
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, bytes, { mode: 0o500, flag: 'wx' }).catch(async (e: unknown) => {
      await rm(tmp, { force: true });
      throw e;
    });
    await rename(tmp, file);
  }
  // Only the agent's own user can write in the directory, so what was checked is what is loaded.
  const check = await readFile(file);
  if (sha256(check) !== hash) {
    throw new AgentError('INTERNAL', `${file} does not match the helper embedded in the binary`, {
      hint: `remove ${dir} and start again`,
    });
  }
  return file;
}

/** Creates `dir` 0700, and refuses one that is a symlink, someone else's, or open to others. */
async function privateDir(dir: string): Promise<void> {
  // Parents made here are ordinary (0755); only the directory itself is private.
  await mkdir(dirname(dir), { recursive: true, mode: 0o755 });
  await mkdir(dir, { mode: 0o700 }).catch((e: unknown) => {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
  });
  const st = await lstat(dir);
  const uid = process.getuid?.() ?? -1;
  if (!st.isDirectory() || (uid >= 0 && st.uid !== uid) || (st.mode & 0o077) !== 0) {
    throw new AgentError(
      'PERMISSION_DENIED',
      `${dir} must be a directory owned by uid ${uid} with mode 0700 to hold the native helper`,
      { hint: `remove it (rm -rf ${dir}) and start again` },
    );
  }
}

function sha256(b: Buffer): string {
  return createHash('sha256').update(b).digest('hex');
}
