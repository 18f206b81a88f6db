import { AgentError } from '../../errors/index.js';

const KEY_RE = /^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$/;
const MAX_LABELS = 64;
const MAX_VALUE_LENGTH = 256;

/**
 * Labels that tokens carry to the hosts enrolled with them (and on to `hosts list` and policies):
 * Kubernetes-like keys, short values, a bounded count.
 */
export function checkLabels(labels: Readonly<Record<string, string>>): Readonly<Record<string, string>> {
  const entries = Object.entries(labels);
  if (entries.length > MAX_LABELS) {
    throw new AgentError(
      'INVALID_ARGUMENT',
      `${entries.length} labels is more than the ${MAX_LABELS} allowed`,
    );
  }
  for (const [k, v] of entries) {
    if (!KEY_RE.test(k)) {
      throw new AgentError('INVALID_ARGUMENT', `label key "${k}" is not allowed`, {
        hint: 'keys are 1-63 characters of A-Z a-z 0-9 . _ / -, starting and ending with a letter or digit',
      });
    }
    if (typeof v !== 'string' || v.length > MAX_VALUE_LENGTH || hasControlCharacter(v)) {
      throw new AgentError('INVALID_ARGUMENT', `label ${k} has a value that is not allowed`, {
        hint: `values are up to ${MAX_VALUE_LENGTH} printable characters`,
      });
    }
  }
  return Object.fromEntries(entries);
}

function hasControlCharacter(v: string): boolean {
  for (let i = 0; i < v.length; i++) if (v.charCodeAt(i) < 0x20 || v.charCodeAt(i) === 0x7f) return true;
  return false;
}
