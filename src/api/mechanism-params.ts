import { isIP } from 'node:net';
import { AgentError } from '../errors/index.js';
import type { Mechanism } from './gen/connection_pb.js';
import { CommonParam, isWireguardKey, KernelParam, MTU_MAX, VNI_MAX, VxlanParam } from './mechanisms.js';

/**
 * Typed readers for mechanism parameters that arrive from peers. All parameter values are strings
 * on the wire (nsm-api.md §3); a reader returns undefined when the key is absent and throws
 * INVALID_ARGUMENT when it is present but malformed. Upstream's Go helpers turn malformed values
 * into 0 silently, which later shows up as an interface on port 0; failing at the edge names the
 * parameter instead.
 */

/** The raw value, or undefined when absent. */
export function readParam(m: Mechanism, key: string): string | undefined {
  return Object.hasOwn(m.parameters, key) ? m.parameters[key] : undefined;
}

/** The raw value; absent or empty is an error. */
export function requireParam(m: Mechanism, key: string): string {
  const v = readParam(m, key);
  if (v === undefined || v === '') {
    throw new AgentError('INVALID_ARGUMENT', `${label(m)} mechanism: parameter ${key} is missing`, {
      hint: 'the peer must set it; check that both sides speak the same NSM mechanism version',
      details: { mechanism: m.type, parameter: key },
    });
  }
  return v;
}

/** A UDP/TCP port: decimal 1..65535 (leading zeros accepted, as Go's ParseUint does). */
export function readPort(m: Mechanism, key: string): number | undefined {
  return readDecimal(m, key, 1, 65535, 'a decimal port 1..65535');
}

/**
 * The `MTU` parameter: decimal 1..65535. "0" reads as absent, because upstream writes 0 to mean
 * "not known" and its readers treat it so.
 */
export function readMtu(m: Mechanism): number | undefined {
  const v = readDecimal(m, CommonParam.MTU, 0, MTU_MAX, `a decimal MTU 1..${MTU_MAX}`);
  return v === 0 ? undefined : v;
}

/** The VXLAN `vni`: decimal 0..2^24−1. */
export function readVni(m: Mechanism): number | undefined {
  return readDecimal(m, VxlanParam.VNI, 0, VNI_MAX, `a decimal VNI 0..${VNI_MAX}`);
}

/** The KERNEL `vlan`: decimal 0..4095. */
export function readVlan(m: Mechanism): number | undefined {
  return readDecimal(m, KernelParam.VLAN, 0, 4095, 'a decimal VLAN id 0..4095');
}

/** A boolean parameter, in any spelling Go's strconv.ParseBool accepts (upstream writes them with Go). */
export function readBool(m: Mechanism, key: string): boolean | undefined {
  const v = readParam(m, key);
  if (v === undefined) return undefined;
  if (TRUE.has(v)) return true;
  if (FALSE.has(v)) return false;
  throw invalid(m, key, v, '"true" or "false"');
}

/** An IP address parameter (src_ip, dst_ip, orig_*): a bare IPv4 or IPv6 address. */
export function readIp(m: Mechanism, key: string): string | undefined {
  const v = readParam(m, key);
  if (v === undefined) return undefined;
  if (isIP(v) === 0) throw invalid(m, key, v, 'an IPv4 or IPv6 address without prefix length');
  return v;
}

/** A WireGuard public key parameter (src_public_key, dst_public_key): base64 of 32 bytes. */
export function readWireguardKey(m: Mechanism, key: string): string | undefined {
  const v = readParam(m, key);
  if (v === undefined) return undefined;
  if (!isWireguardKey(v)) throw invalid(m, key, v, 'a base64 WireGuard public key (44 characters)');
  return v;
}

const TRUE: ReadonlySet<string> = new Set(['1', 't', 'T', 'true', 'TRUE', 'True']);
const FALSE: ReadonlySet<string> = new Set(['0', 'f', 'F', 'false', 'FALSE', 'False']);
/** Long garbage values are cut in messages so one bad peer cannot flood the logs. */
const MAX_SHOWN = 64;

function readDecimal(
  m: Mechanism,
  key: string,
  min: number,
  max: number,
  expected: string,
): number | undefined {
  const v = readParam(m, key);
  if (v === undefined) return undefined;
  // Number() alone would accept "", " 1", "1e3", "0x10" and "1.0"; the wire format is plain digits.
  if (!/^[0-9]{1,10}$/.test(v)) throw invalid(m, key, v, expected);
  const n = Number(v);
  if (n < min || n > max) throw invalid(m, key, v, expected);
  return n;
}

function label(m: Mechanism): string {
  return m.type === '' ? '(untyped)' : m.type;
}

function invalid(m: Mechanism, key: string, value: string, expected: string): AgentError {
  const shown = value.length > MAX_SHOWN ? `${value.slice(0, MAX_SHOWN)}…` : value;
  return new AgentError(
    'INVALID_ARGUMENT',
    `${label(m)} mechanism: parameter ${key} is ${JSON.stringify(shown)}, expected ${expected}`,
    {
      hint: 'the peer sent a malformed mechanism; check its NSM version and configuration',
      details: { mechanism: m.type, parameter: key },
    },
  );
}
