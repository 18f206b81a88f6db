import test from 'ava';
import { SequenceRandom } from '../../../src/host/fake/random.js';
import {
  assertNotInArgv,
  generatePrivateKey,
  isWireGuardKey,
  keyFromHex,
  keyToHex,
  publicKeyOf,
} from '../../../src/host/wireguard/keys.js';

// A pair as wireguard-tools printed it (`wg show dump` of a device given this private key).
const priv = '6MV8TtALvgNzd5sR+uLbfd5GwV9ukK25RrEh1J6vTlE=';
const pub = 'DdPiPIErSDU4PSqhfjepN2GjPCeQEe1uq/sJz2umsW8=';

test('public key from private key matches wg pubkey', (t) => {
  t.is(publicKeyOf(priv), pub);
});

test('generated private keys are clamped like wg genkey and deterministic with a fake Random', (t) => {
  const k = generatePrivateKey(new SequenceRandom());
  t.true(isWireGuardKey(k));
  const b = Buffer.from(k, 'base64');
  t.is(b[0]! & 7, 0);
  t.is(b[31]! & 128, 0);
  t.is(b[31]! & 64, 64);
  t.is(k, generatePrivateKey(new SequenceRandom()));
  t.true(isWireGuardKey(publicKeyOf(generatePrivateKey())));
});

test('hex for UAPI and back', (t) => {
  const hex = keyToHex(pub);
  t.regex(hex, /^[0-9a-f]{64}$/);
  t.is(keyFromHex(hex), pub);
  t.throws(() => keyFromHex('ABC'));
});

test('a bad key is refused without echoing it', (t) => {
  const e = t.throws(() => publicKeyOf('not-a-key-but-maybe-secret'));
  t.notRegex(e.message, /maybe-secret/);
});

test('a private key in argv is refused, in base64 or hex', (t) => {
  t.throws(() => assertNotInArgv(['wg', 'set', 'x', 'private-key', priv], priv), {
    message: /private key is in its argv/,
  });
  t.throws(() => assertNotInArgv(['x', `k=${keyToHex(priv)}`], priv));
  t.notThrows(() => assertNotInArgv(['wg', 'set', 'x', 'private-key', '/dev/stdin'], priv));
});
