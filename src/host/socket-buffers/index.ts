export {
  addonAssetName,
  loadIcmpAddon,
  loadNativeHelper,
  loadProcessMemoryAddon,
  loadUdpBuffersAddon,
} from './native-addon.js';
export type {
  IcmpAddon,
  NativeAddonOptions,
  NativeHelper,
  ProcessMemoryAddon,
  UdpBuffersAddon,
} from './native-addon.js';
export { NativeUdpSocketBuffers } from './native-udp-socket-buffers.js';
export { defaultUdpBufferBytes } from './udp-socket-buffers.js';
export type { UdpSocketBuffer, UdpSocketBuffers } from './udp-socket-buffers.js';
