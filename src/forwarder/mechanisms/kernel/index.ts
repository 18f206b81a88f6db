export { kernelClient } from './client.js';
export { defaultInterfaceName, interfaceNameOf, localEntry, workloadNetnsOf } from './common.js';
export type { KernelOptions } from './common.js';
export { kernelServer } from './server.js';
