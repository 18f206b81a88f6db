export { createLogger, silentLogger } from './logger.js';
export type { Logger, LoggerOptions, LogLevel } from './logger.js';
