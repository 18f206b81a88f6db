import { renderSelectorValue } from './selector-template.js';

export type Labels = Readonly<Record<string, string>>;

/**
 * NSM's `IsSubset(a, b, vars)` (nsm-api.md §4.8): every key of the selector `b` is in `a` with the same
 * value, where a selector value that differs is rendered as a template with `vars` (the request's
 * labels) and compared again. As in NSM, a key missing from `a` reads as "" and a selector with more
 * keys than `a` has never matches. An empty selector matches anything.
 */
export function isSubset(a: Labels, b: Labels, vars: Labels): boolean {
  const selector = Object.entries(b);
  if (Object.keys(a).length < selector.length) return false;
  for (const [key, want] of selector) {
    const have = Object.hasOwn(a, key) ? (a[key] ?? '') : '';
    if (have === want) continue;
    if (have !== renderSelectorValue(want, vars)) return false;
  }
  return true;
}
