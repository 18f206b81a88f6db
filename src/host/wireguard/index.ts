export { chooseBackend, detectBackend, probeBackends } from './detect-backend.js';
export { createWireGuard } from './create-wireguard.js';
export type { CreateWireGuardOptions } from './create-wireguard.js';
export type { BackendProbe, DetectBackendOptions, DetectedBackend } from './detect-backend.js';
export { KernelWireGuard } from './kernel-wireguard.js';
export type { KernelWireGuardOptions } from './kernel-wireguard.js';
export {
  assertNotInArgv,
  generatePrivateKey,
  isWireGuardKey,
  keyFromHex,
  keyToHex,
  publicKeyOf,
} from './keys.js';
export type { WireGuardKey } from './keys.js';
export { checkCidr, checkEndpoint, parseUapiGet, uapiErrno, uapiGetRequest, uapiSetRequest } from './uapi.js';
export type { UapiDeviceSettings } from './uapi.js';
export { unixUapiTransport } from './uapi-client.js';
export type { UapiTransport } from './uapi-client.js';
export {
  UserspaceWireGuard,
  defaultLogDir,
  defaultSocketDir,
  wireguardGoEnv,
} from './userspace-wireguard.js';
export type { UserspaceWireGuardOptions } from './userspace-wireguard.js';
export { parseWgDump } from './wg-dump.js';
export { listWireGuardGoProcesses, parseWireGuardGoArgv } from './wireguard-go-processes.js';
export type { WireGuardGoProcess } from './wireguard-go-processes.js';
export { checkDeviceName, defaultWireGuardMtu } from './wireguard.js';
export type {
  ConfigureOptions,
  DeviceConfig,
  DeviceState,
  PeerConfig,
  PeerState,
  WireGuard,
  WireGuardBackendKind,
} from './wireguard.js';
