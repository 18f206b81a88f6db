export { FakeRegistryLookup, registryDown } from './registry-lookup.js';
