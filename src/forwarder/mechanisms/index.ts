export { closeWithEntry, farPrefixes, requestWithEntry, sideAddresses } from './entries.js';
export type { ConnectionSide, ForwarderEntries } from './entries.js';
export {
  defaultInterfaceName,
  interfaceNameOf,
  kernelClient,
  kernelServer,
  localEntry,
  workloadNetnsOf,
} from './kernel/index.js';
export type { KernelOptions } from './kernel/index.js';
export { carriesIp, endpointOf, wireguardClient, wireguardServer } from './wireguard/index.js';
export type { WireguardOptions } from './wireguard/index.js';
