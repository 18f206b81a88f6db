// Child for the disk-full test; runs inside a private mount namespace with a small tmpfs at <dir>.
// Fills the embedded store until a write fails, checks the store then refuses further changes,
// frees some space, reopens and prints a JSON report on stdout.
//   node --import tsx test/integration/store/embedded-disk-full.ts <dir>
import { rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { EmbeddedStore } from '../../../src/store/index.js';

async function main(): Promise<void> {
  const root = process.argv[2];
  if (!root) throw new Error('usage: embedded-disk-full.ts <dir>');
  const ballast = join(root, 'ballast');
  writeFileSync(ballast, Buffer.alloc(256 * 1024));
  const dir = join(root, 'store');
  const store = await EmbeddedStore.open({ dir, compactAfterBytes: 1024 * 1024 * 1024 });
  const value = Buffer.alloc(64 * 1024, 7);
  let acked = 0;
  let first: { code: string; message: string } | undefined;
  for (let i = 0; i < 10_000 && !first; i++) {
    try {
      await store.put(`/k/${i}`, value);
      acked++;
    } catch (e: unknown) {
      first = { code: String((e as { code?: unknown }).code), message: (e as Error).message };
    }
  }
  let second = '';
  try {
    await store.put('/after', Buffer.from('x'));
  } catch (e: unknown) {
    second = String((e as { code?: unknown }).code);
  }
  await store.close();
  rmSync(ballast);
  const again = await EmbeddedStore.open({ dir });
  const keys = (await again.list('/k/')).entries.length;
  await again.close();
  process.stdout.write(`${JSON.stringify({ acked, first, second, keys })}\n`);
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
