export { addonAssetName, loadIcmpAddon, loadNativeHelper, loadUdpBuffersAddon } from './native-addon.js';
export type {
  IcmpAddon,
  IcmpReply,
  NativeAddonOptions,
  NativeHelper,
  UdpBuffersAddon,
} from './native-addon.js';
export { NativeUdpSocketBuffers } from './native-udp-socket-buffers.js';
export { defaultUdpBufferBytes } from './udp-socket-buffers.js';
export type { UdpSocketBuffer, UdpSocketBuffers } from './udp-socket-buffers.js';
