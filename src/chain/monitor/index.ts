export { ConnectionMonitor } from './monitor.js';
export type { ConnectionMonitorOptions } from './monitor.js';
export { matchesSelector } from './selector.js';
export { monitorServer } from './server.js';
export { monitorConnectionService } from './service.js';
export type { MonitorServiceOptions } from './service.js';
