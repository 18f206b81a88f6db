import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { randomBytes } from 'node:crypto';

/** Mode for private keys and anything else secret. */
export const SECRET_FILE_MODE = 0o600;
/** Mode for certificates and bundles: public, but only root writes them. */
export const PUBLIC_FILE_MODE = 0o644;

/**
 * Writes `path` so that a crash at any instant leaves either the old content or the new, never a
 * mix (reliability §1.8): temp file in the same directory created with its final mode (a key is
 * never readable by others, not even briefly), fsync, rename over the target, fsync the directory
 * so the rename itself is durable.
 */
export async function writeFileAtomic(path: string, data: string | Uint8Array, mode: number): Promise<void> {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${randomBytes(6).toString('hex')}.tmp`);
  const file = await open(tmp, 'wx', mode);
  try {
    await file.writeFile(data);
    await file.chmod(mode); // the umask may have narrowed or the file may be on a mode-forcing fs
    await file.sync();
  } catch (e: unknown) {
    await file.close();
    await rm(tmp, { force: true });
    throw e;
  }
  await file.close();
  try {
    await rename(tmp, path);
  } catch (e: unknown) {
    await rm(tmp, { force: true });
    throw e;
  }
  await syncDir(dir);
}

/** fsync of a directory, which makes renames and unlinks in it durable. */
export async function syncDir(dir: string): Promise<void> {
  const handle = await open(dir, 'r');
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}
