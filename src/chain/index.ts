export * from './core/index.js';
export * from './begin/index.js';
export * from './metadata/index.js';
export * from './updatepath/index.js';
