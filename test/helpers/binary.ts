// The single binary as tests use it: dist/nsm-agent, built by `npm run build:binary` (CI builds it
// first). Without it a binary test FAILS with the command to run, unless NSM_AGENT_SKIP_BINARY=1 says
// to skip, which ava then reports as skipped: never a silent pass.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import test from 'ava';
import type { ExecutionContext } from 'ava';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const builtBinary = join(repoRoot, 'dist', 'nsm-agent');
export const binaryAvailable = existsSync(builtBinary);
const skip = process.env.NSM_AGENT_SKIP_BINARY === '1';

type Body = (t: ExecutionContext) => Promise<void>;

/** A serial test that needs dist/nsm-agent. */
export function binaryTest(title: string, body: Body): void {
  if (binaryAvailable) test.serial(title, body);
  else if (skip) test.skip(title, body);
  else
    test(title, (t) => {
      t.fail(
        `${builtBinary} does not exist: run npm run build:binary first (or set NSM_AGENT_SKIP_BINARY=1 to skip)`,
      );
    });
}
