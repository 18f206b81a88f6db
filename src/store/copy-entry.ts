import type { Entry } from './store.js';

/** An Entry whose value the caller may keep and modify without touching the store's copy. */
export function copyEntry(e: Entry): Entry {
  return { ...e, value: e.value.slice() };
}
