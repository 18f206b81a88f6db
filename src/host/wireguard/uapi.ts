import { AgentError } from '../../errors/index.js';
import { keyFromHex, keyToHex, publicKeyOf } from './keys.js';
import type { WireGuardKey } from './keys.js';
import type { ConfigureOptions, DeviceState, PeerConfig, PeerState } from './wireguard.js';

/**
 * The WireGuard cross-platform UAPI text protocol (wireguard.com/xplatform), as spoken by
 * wireguard-go on /var/run/wireguard/<if>.sock: one request per connection, `key=value` lines, an
 * empty line ends a message; keys are hex; every reply ends with `errno=N` and an empty line.
 * Pure functions only, so all of it is tested without root.
 */

/** `get=1` request. */
export const uapiGetRequest = 'get=1\n\n';

export interface UapiDeviceSettings {
  readonly privateKey?: WireGuardKey;
  readonly listenPort?: number;
  readonly fwmark?: number;
}

/** A `set=1` request for device settings and/or peer changes. */
export function uapiSetRequest(device: UapiDeviceSettings, peers?: ConfigureOptions): string {
  const lines = ['set=1'];
  if (device.privateKey !== undefined)
    lines.push(`private_key=${keyToHex(device.privateKey, 'private key')}`);
  if (device.listenPort !== undefined) lines.push(`listen_port=${port(device.listenPort)}`);
  if (device.fwmark !== undefined) lines.push(`fwmark=${device.fwmark}`);
  if (peers !== undefined) {
    if (peers.replacePeers === true) lines.push('replace_peers=true');
    for (const key of peers.removePeers ?? [])
      lines.push(`public_key=${keyToHex(key, 'public key')}`, 'remove=true');
    for (const p of peers.peers) lines.push(...peerLines(p));
  }
  return `${lines.join('\n')}\n\n`;
}

function peerLines(p: PeerConfig): string[] {
  const lines = [`public_key=${keyToHex(p.publicKey, 'public key')}`];
  if (p.endpoint !== undefined) lines.push(`endpoint=${checkEndpoint(p.endpoint)}`);
  lines.push(`persistent_keepalive_interval=${p.persistentKeepalive ?? 0}`);
  lines.push('replace_allowed_ips=true');
  for (const cidr of p.allowedIps) lines.push(`allowed_ip=${checkCidr(cidr)}`);
  return lines;
}

/** The errno of a reply; 0 is success. Throws when the reply is cut short (no errno line). */
export function uapiErrno(reply: string): number {
  const m = /(?:^|\n)errno=(-?\d+)\n\n?$/.exec(reply);
  if (m?.[1] === undefined) {
    throw new AgentError('UNAVAILABLE', 'the WireGuard UAPI reply ended without errno', {
      hint: 'wireguard-go may have exited; check its log and restart the agent',
    });
  }
  return Number(m[1]);
}

/** Parses a `get=1` reply into the device state; the private key only yields the public key. */
export function parseUapiGet(name: string, reply: string): DeviceState {
  const errno = uapiErrno(reply);
  if (errno !== 0) {
    throw new AgentError('EXEC_FAILED', `WireGuard UAPI get on ${name} failed with errno ${errno}`, {
      hint: 'check the wireguard-go log for this device',
    });
  }
  let publicKey: WireGuardKey | undefined;
  let listenPort = 0;
  const peers: MutablePeer[] = [];
  let peer: MutablePeer | undefined;
  let hsSec = 0;
  let hsNsec = 0;
  const finishHandshake = (): void => {
    if (peer) peer.lastHandshakeMs = hsSec * 1000 + Math.floor(hsNsec / 1e6);
    hsSec = 0;
    hsNsec = 0;
  };
  for (const line of reply.split('\n')) {
    if (line === '') continue;
    const eq = line.indexOf('=');
    if (eq < 0) throw badLine(line);
    const key = line.slice(0, eq);
    const value = line.slice(eq + 1);
    if (key === 'public_key') {
      finishHandshake();
      peer = {
        publicKey: keyFromHex(value, 'public key'),
        allowedIps: [],
        lastHandshakeMs: 0,
        rxBytes: 0,
        txBytes: 0,
        persistentKeepalive: 0,
      };
      peers.push(peer);
      continue;
    }
    if (peer === undefined) {
      if (key === 'private_key') publicKey = publicKeyOfHex(value);
      else if (key === 'listen_port') listenPort = Number(value);
      continue;
    }
    switch (key) {
      case 'endpoint':
        peer.endpoint = value;
        break;
      case 'allowed_ip':
        peer.allowedIps.push(value);
        break;
      case 'last_handshake_time_sec':
        hsSec = Number(value);
        break;
      case 'last_handshake_time_nsec':
        hsNsec = Number(value);
        break;
      case 'rx_bytes':
        peer.rxBytes = Number(value);
        break;
      case 'tx_bytes':
        peer.txBytes = Number(value);
        break;
      case 'persistent_keepalive_interval':
        peer.persistentKeepalive = Number(value);
        break;
      default:
        // preshared_key, protocol_version, errno: not part of the state the agent compares.
        break;
    }
  }
  finishHandshake();
  return { name, ...(publicKey === undefined ? {} : { publicKey }), listenPort, peers: peers.map(freeze) };
}

interface MutablePeer {
  publicKey: WireGuardKey;
  endpoint?: string;
  allowedIps: string[];
  lastHandshakeMs: number;
  rxBytes: number;
  txBytes: number;
  persistentKeepalive: number;
}

function freeze(p: MutablePeer): PeerState {
  return { ...p, allowedIps: [...p.allowedIps] };
}

function badLine(line: string): AgentError {
  return new AgentError(
    'EXEC_FAILED',
    `unexpected WireGuard UAPI line ${JSON.stringify(line.slice(0, 80))}`,
    {
      hint: 'check the wireguard-go version (Debian wireguard-go 0.0.20220316 or newer)',
    },
  );
}

function port(p: number): number {
  if (!Number.isInteger(p) || p < 0 || p > 65535) {
    throw new AgentError('INVALID_ARGUMENT', `WireGuard listen port ${p} is not 0..65535`, {
      hint: 'set wireguard.port in the config (default 51820)',
    });
  }
  return p;
}

/** `ip:port` or `[ipv6]:port`; names are not resolved here (the caller resolves first). */
export function checkEndpoint(e: string): string {
  if (!/^(\d{1,3}(\.\d{1,3}){3}|\[[0-9A-Fa-f:.%a-z]+\]):\d{1,5}$/.test(e)) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `WireGuard endpoint ${JSON.stringify(e)} is not ip:port or [ipv6]:port`,
      {
        hint: 'resolve host names before configuring the peer',
      },
    );
  }
  return e;
}

export function checkCidr(c: string): string {
  if (!/^(\d{1,3}(\.\d{1,3}){3}\/\d{1,2}|[0-9A-Fa-f:.]+\/\d{1,3})$/.test(c)) {
    throw new AgentError('INVALID_ARGUMENT', `allowed IP ${JSON.stringify(c)} is not a CIDR`, {
      hint: 'write allowed IPs as address/prefix, e.g. 169.254.0.2/32',
    });
  }
  return c;
}

/**
 * The public key of a device's private key (hex, as UAPI prints it). A device keeps its key, and
 * every get (the forwarder's drift check reads each device every 10 s) would derive it again (~1 ms
 * of X25519): the last one is remembered.
 */
function publicKeyOfHex(privateHex: string): WireGuardKey {
  if (lastDerived?.privateHex !== privateHex) {
    lastDerived = { privateHex, publicKey: publicKeyOf(keyFromHex(privateHex, 'private key')) };
  }
  return lastDerived.publicKey;
}

let lastDerived: { readonly privateHex: string; readonly publicKey: WireGuardKey } | undefined;
