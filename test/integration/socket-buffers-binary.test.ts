// The single binary carries the native UDP-buffer helper as a SEA asset: it writes it to a private
// directory under a content-hash name, checks it, loads it, and `doctor` proves it works on this host
// (pidfd_getfd on its own UDP socket). A file that does not match the embedded helper is replaced.
import { execFile } from 'node:child_process';
import { copyFileSync, mkdtempSync, readdirSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { binaryTest, builtBinary } from '../helpers/binary.js';

const nativeDir = '/run/nsm-agent/native';

interface Check {
  readonly name: string;
  readonly status: string;
  readonly detail: string;
}

function doctor(binary: string, config: string): Promise<Check[]> {
  return new Promise((resolve, reject) => {
    execFile(
      binary,
      ['--config', config, 'doctor', '--json'],
      { cwd: tmpdir(), timeout: 30_000, env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } },
      (_error, stdout, stderr) => {
        try {
          resolve((JSON.parse(stdout) as { checks: Check[] }).checks);
        } catch {
          reject(new Error(`doctor printed no JSON: ${stdout}${stderr}`));
        }
      },
    );
  });
}

binaryTest('the binary loads its embedded buffer helper from a private, hash-named file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'nsm-agent-native-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const binary = join(dir, 'nsm-agent');
  copyFileSync(builtBinary, binary);
  const config = join(dir, 'config.json');
  // The userspace backend, so doctor checks the helper whether or not the kernel has WireGuard.
  writeFileSync(config, JSON.stringify({ wireguard: { backend: 'userspace' } }));

  const check = (await doctor(binary, config)).find((c) => c.name === 'wireguard-go-buffers');
  t.is(check?.status, 'ok', check?.detail);
  t.regex(check?.detail ?? '', /UDP buffers can be sized/);
  t.is(statSync(nativeDir).mode & 0o777, 0o700);
  const files = readdirSync(nativeDir).filter((f) => /^udp-socket-buffers-[0-9a-f]{16}\.node$/.test(f));
  t.true(files.length >= 1, readdirSync(nativeDir).join(','));

  // Replace every helper file with garbage (by rename, so a concurrent run never loads a half-written file): the binary
  // notices the hash mismatch, writes its own again, and still works.
  for (const f of files) {
    writeFileSync(join(dir, 'garbage'), 'not a shared object');
    renameSync(join(dir, 'garbage'), join(nativeDir, f));
  }
  const again = (await doctor(binary, config)).find((c) => c.name === 'wireguard-go-buffers');
  t.is(again?.status, 'ok', again?.detail);
});
