export * from './core/index.js';
export * from './begin/index.js';
export * from './metadata/index.js';
export * from './updatepath/index.js';
export * from './authorize/index.js';
export * from './refresh/index.js';
export * from './timeout/index.js';
export * from './updatetoken/index.js';
