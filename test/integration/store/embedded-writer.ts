// Child process for the kill -9 test: writes keys `<prefix><n>` into the embedded store in <dir>
// with 8 writers in parallel (so group commit and compaction run) and prints `ack <key>` for each
// write the store acknowledged. The parent kills it with SIGKILL at a random moment.
//   node --import tsx test/integration/store/embedded-writer.ts <dir> <prefix>
import { EmbeddedStore } from '../../../src/store/index.js';
import { valueFor } from './writer-values.js';

async function main(): Promise<void> {
  const [dir, prefix] = process.argv.slice(2);
  if (!dir || !prefix) throw new Error('usage: embedded-writer.ts <dir> <prefix>');
  const store = await EmbeddedStore.open({ dir, compactAfterBytes: 64 * 1024 });
  process.stdout.write('ready\n');
  let next = 0;
  const writer = async (): Promise<void> => {
    // Bounded: the parent kills us long before this ends.
    while (next < 1_000_000) {
      const key = `${prefix}${next++}`;
      await store.put(key, valueFor(key));
      process.stdout.write(`ack ${key}\n`);
    }
  };
  await Promise.all(Array.from({ length: 8 }, writer));
}

main().catch((e: unknown) => {
  process.stderr.write(`${String(e)}\n`);
  process.exit(1);
});
