import { MemoryStore } from '../../../src/store/index.js';
import { registerStoreContract } from '../../helpers/store-contract.js';

registerStoreContract('memory', () => Promise.resolve(new MemoryStore()));
