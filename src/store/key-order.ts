/**
 * Keys are ordered by their UTF-8 bytes, as etcd orders them, so `list` returns the same order from
 * every store. JavaScript compares UTF-16 code units, which differs from byte order only when a
 * surrogate (U+D800–U+DFFF, astral characters) meets a code unit in U+E000–U+FFFF; `rank` fixes that.
 */
export function compareKeys(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const ca = a.charCodeAt(i);
    const cb = b.charCodeAt(i);
    if (ca !== cb) return rank(ca) - rank(cb);
  }
  return a.length - b.length;
}

function rank(c: number): number {
  if (c >= 0xd800 && c <= 0xdfff) return c + 0x2000;
  if (c >= 0xe000) return c - 0x800;
  return c;
}
