import { AgentError } from '../../errors/index.js';
import { publicKeyOf } from './keys.js';
import type { DeviceState, PeerState } from './wireguard.js';

/**
 * Parses `wg show <if> dump`: a device line (private key, public key, listen port, fwmark) then one
 * tab-separated line per peer (public key, preshared key, endpoint, allowed ips, latest handshake,
 * rx, tx, persistent keepalive). `(none)` and `off` mean absent.
 */
export function parseWgDump(name: string, stdout: string): DeviceState {
  const lines = stdout.split('\n').filter((l) => l !== '');
  const [head, ...rest] = lines;
  const dev = head?.split('\t') ?? [];
  if (dev.length < 4) throw bad('device');
  const [privateKey, publicKey, listenPort] = dev;
  // The public key column is (none) until a private key is set; derive it when we can.
  const pub =
    publicKey !== undefined && publicKey !== '(none)'
      ? publicKey
      : privateKey !== undefined && privateKey !== '(none)'
        ? publicKeyOf(privateKey)
        : undefined;
  const peers = rest.map((line): PeerState => {
    const f = line.split('\t');
    if (f.length < 8) throw bad('peer');
    const [key, , endpoint, allowed, handshake, rx, tx, keepalive] = f as [
      string,
      string,
      string,
      string,
      string,
      string,
      string,
      string,
    ];
    return {
      publicKey: key,
      ...(endpoint === '(none)' ? {} : { endpoint }),
      allowedIps: allowed === '(none)' ? [] : allowed.split(','),
      lastHandshakeMs: Number(handshake) * 1000,
      rxBytes: Number(rx),
      txBytes: Number(tx),
      persistentKeepalive: keepalive === 'off' ? 0 : Number(keepalive),
    };
  });
  return { name, ...(pub === undefined ? {} : { publicKey: pub }), listenPort: Number(listenPort), peers };
}

function bad(what: string): AgentError {
  return new AgentError('EXEC_FAILED', `'wg show dump' printed an unexpected ${what} line`, {
    hint: 'check the wireguard-tools version (Debian wireguard-tools 1.0.20210914 or newer)',
  });
}
