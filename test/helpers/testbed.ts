// The data-plane test bed now lives in scripts/lib/testbed.ts, so `npm run demo` can use it
// without importing test code; this module keeps every existing import working.
export * from '../../scripts/lib/testbed.js';
