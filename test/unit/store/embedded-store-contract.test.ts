import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import test from 'ava';
import { EmbeddedStore } from '../../../src/store/index.js';
import { registerStoreContract } from '../../helpers/store-contract.js';

const dirs: string[] = [];
test.after.always(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

registerStoreContract('embedded', () => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-store-contract-'));
  dirs.push(dir);
  // A small compaction threshold so the contract also runs across log switches and snapshots.
  return EmbeddedStore.open({ dir, compactAfterBytes: 256 * 1024 });
});
