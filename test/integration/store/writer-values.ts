/** The value the kill -9 writer stores under `key`; sizes vary so frames straddle write boundaries. */
export function valueFor(key: string): Uint8Array {
  const pad = (key.length * 7919) % 3000;
  return new TextEncoder().encode(`${key}:${'x'.repeat(pad)}`);
}
