import { randomBytes, randomUUID } from 'node:crypto';

/** Randomness as a port, so tests can make ids and jitter deterministic. */
export interface Random {
  uuid(): string;
  /** A float in [0, 1). */
  float(): number;
  bytes(n: number): Uint8Array;
}

export const systemRandom: Random = {
  uuid: () => randomUUID(),
  float: () => randomBytes(4).readUInt32BE(0) / 0x1_0000_0000,
  bytes: (n) => new Uint8Array(randomBytes(n)),
};
