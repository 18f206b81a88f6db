import { AgentError } from '../../errors/index.js';

/** One object of an `ip -json` array, fields not yet checked. */
export type IpJsonObject = Readonly<Record<string, unknown>>;

/**
 * Parses the stdout of an `ip -json …` command into its array of objects. `ip` prints nothing at
 * all (not `[]`) for an empty `netns list`, and only `[` when a dump is cut short (a missing route
 * table), so both count as empty; anything else that is not an array of objects is an error.
 */
export function parseIpJson(stdout: string, what: string): IpJsonObject[] {
  const text = stdout.trim();
  if (text === '' || text === '[') return [];
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (e: unknown) {
    throw AgentError.wrap(
      e,
      'EXEC_FAILED',
      `'ip -json' printed something that is not JSON for ${what}`,
      'the agent needs iproute2 with -json support (Debian 10 or newer): run nsm-agent doctor',
    );
  }
  if (!Array.isArray(value) || !value.every(isObject)) {
    throw new AgentError('EXEC_FAILED', `'ip -json' did not print an array of objects for ${what}`, {
      hint: 'run nsm-agent doctor to check the iproute2 version',
    });
  }
  return value;
}

function isObject(v: unknown): v is IpJsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function str(o: IpJsonObject, key: string): string | undefined {
  const v = o[key];
  return typeof v === 'string' ? v : undefined;
}

export function num(o: IpJsonObject, key: string): number | undefined {
  const v = o[key];
  return typeof v === 'number' ? v : undefined;
}

export function strings(o: IpJsonObject, key: string): readonly string[] {
  const v = o[key];
  return Array.isArray(v) ? v.filter((x): x is string => typeof x === 'string') : [];
}

export function obj(o: IpJsonObject, key: string): IpJsonObject | undefined {
  const v = o[key];
  return isObject(v) ? v : undefined;
}

export function requireStr(o: IpJsonObject, key: string, what: string): string {
  const v = str(o, key);
  if (v === undefined) {
    throw new AgentError('EXEC_FAILED', `'ip -json' ${what} entry has no '${key}'`, {
      hint: 'run nsm-agent doctor to check the iproute2 version',
    });
  }
  return v;
}
