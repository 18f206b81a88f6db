import { closestMatch } from './closest-match.js';
import type { JsonSchema } from './config-schema.js';
import type { SchemaViolation } from './validate.js';

/** One thing wrong with a config file, phrased for the person who has to fix it. */
export interface ConfigProblem {
  /** Field path like `wireguard.port` or `connects[0].service`; empty for the file as a whole. */
  readonly path: string;
  /** What is wrong, e.g. `must be <= 65535, got 70000`. */
  readonly problem: string;
  /** What a good value looks like (from the schema's description). */
  readonly expected?: string;
  /** A concrete fix when one is known, e.g. `did you mean "agent"?`. */
  readonly fix?: string;
}

export type PathSegment = string | number;

/** `["connects", 0, "labels", "app.io/x"]` → `connects[0].labels["app.io/x"]`. */
export function formatPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const s of segments) {
    if (typeof s === 'number') out += `[${s}]`;
    else if (/^[A-Za-z_$][A-Za-z0-9_$]*$/.test(s)) out += out === '' ? s : `.${s}`;
    else out += `[${JSON.stringify(s)}]`;
  }
  return out;
}

/** One line per problem, for messages and human CLI output. */
export function formatProblem(p: ConfigProblem): string {
  const where = p.path === '' ? '' : `${p.path}: `;
  const expected = p.expected === undefined ? '' : ` (expected: ${p.expected})`;
  const fix = p.fix === undefined ? '' : `; ${p.fix}`;
  return `${where}${p.problem}${expected}${fix}`;
}

/**
 * Turns the checks the file failed (validate.ts; Ajv's wording, e.g. `must be <= 65535` at
 * `wireguard/port`, or `must NOT have additional properties` at the top level) plus the parsed file
 * and the schema into problems a person can act on: it names the unknown key and its likely intended
 * spelling, lists allowed values, and shows the schema's description of a good value instead of a
 * regex. Wording it does not recognise is passed through with the value found.
 */
export function problemsFromViolations(
  violations: readonly SchemaViolation[],
  data: unknown,
  schema: JsonSchema,
): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const seen = new Set<string>();
  const add = (p: ConfigProblem): void => {
    const key = `${p.path}\u0000${p.problem}`;
    if (seen.has(key)) return;
    seen.add(key);
    problems.push(p);
  };
  for (const v of violations) {
    for (const p of translate(v.message, v.path, data, schema)) add(p);
  }
  return problems;
}

function translate(
  ajvMessage: string,
  segments: readonly PathSegment[],
  data: unknown,
  schema: JsonSchema,
): ConfigProblem[] {
  const node = schemaAt(schema, segments);
  const value = valueAt(data, segments);
  const path = formatPath(segments);
  const expected = node?.description;
  // Field order is the reading order in `config validate --json`: where, what, expected, fix.
  const withExpected = (p: { path: string; problem: string; fix?: string }): ConfigProblem => {
    const { fix, ...rest } = p;
    return {
      ...rest,
      ...(expected === undefined ? {} : { expected }),
      ...(fix === undefined ? {} : { fix }),
    };
  };

  if (ajvMessage.startsWith('must NOT have additional properties')) {
    return unknownKeys(segments, value, node, schema);
  }
  if (
    ajvMessage === 'property name must be valid' ||
    (node?.propertyNames && ajvMessage.startsWith('must match'))
  ) {
    return badKeys(segments, value, node);
  }
  const required = /^must have required property '(.*)'$/.exec(ajvMessage);
  if (required) {
    const key = required[1] ?? '';
    const child = node?.properties?.[key];
    const p = { path: formatPath([...segments, key]), problem: 'is required but missing' };
    return [child?.description === undefined ? p : { ...p, expected: child.description }];
  }
  if (ajvMessage === 'must be equal to one of the allowed values' && node?.enum) {
    const allowed = node.enum;
    const suggestion = typeof value === 'string' ? closestMatch(value, allowed) : undefined;
    const p = {
      path,
      problem: `must be one of ${allowed.map((v) => JSON.stringify(v)).join(', ')}, got ${show(value)}`,
    };
    return [suggestion === undefined ? p : { ...p, fix: `did you mean ${JSON.stringify(suggestion)}?` }];
  }
  const type = /^must be (object|array|string|integer|number|boolean|null)$/.exec(ajvMessage);
  if (type) {
    const want = type[1] ?? '';
    const p = { path, problem: `must be ${article(want)}, got ${describeType(value)}` };
    if (want === 'integer' && typeof value === 'string' && /^\s*[0-9]+\s*$/.test(value)) {
      return [withExpected({ ...p, fix: `write the number without quotes: ${value.trim()}` })];
    }
    return [withExpected(p)];
  }
  if (ajvMessage.startsWith('must match pattern')) {
    // The regex itself helps nobody; the description says what a good value looks like.
    return [withExpected({ path, problem: `${show(value)} is not valid` })];
  }
  return [withExpected({ path, problem: `${ajvMessage}, got ${show(value)}` })];
}

function unknownKeys(
  segments: readonly PathSegment[],
  value: unknown,
  node: JsonSchema | undefined,
  schema: JsonSchema,
): ConfigProblem[] {
  const known = Object.keys(node?.properties ?? {});
  if (!isRecord(value)) return [{ path: formatPath(segments), problem: 'has unknown keys' }];
  const here = segments.length === 0 ? 'at the top level' : `in ${formatPath(segments)}`;
  return Object.keys(value)
    .filter((k) => !known.includes(k))
    .map((k) => {
      const near = closestMatch(k, known);
      const elsewhere = near === undefined ? findElsewhere(k, schema, segments) : undefined;
      const fix =
        near !== undefined
          ? `did you mean ${JSON.stringify(near)}?`
          : elsewhere !== undefined
            ? `did you mean to put it in ${elsewhere}?`
            : `allowed keys ${here}: ${known.join(', ')}`;
      return { path: formatPath([...segments, k]), problem: 'unknown key', fix };
    });
}

function badKeys(
  segments: readonly PathSegment[],
  value: unknown,
  node: JsonSchema | undefined,
): ConfigProblem[] {
  const pattern = node?.propertyNames?.pattern;
  const max = node?.propertyNames?.maxLength;
  if (!isRecord(value) || pattern === undefined) {
    return [{ path: formatPath(segments), problem: 'has an invalid key' }];
  }
  const re = new RegExp(pattern, 'u');
  return Object.keys(value)
    .filter((k) => !re.test(k) || (max !== undefined && k.length > max))
    .map((k) => {
      const p = { path: formatPath([...segments, k]), problem: 'is not a valid key' };
      return node?.description === undefined ? p : { ...p, expected: node.description };
    });
}

/** For a key that is unknown where it stands but known somewhere else, e.g. `port` at the top level. */
function findElsewhere(key: string, schema: JsonSchema, exclude: readonly PathSegment[]): string | undefined {
  const found: string[] = [];
  const walk = (node: JsonSchema, at: PathSegment[]): void => {
    for (const [k, child] of Object.entries(node.properties ?? {})) {
      if (k === key && formatPath(at) !== formatPath(exclude)) found.push(formatPath(at));
      walk(child, [...at, k]);
    }
    if (node.items) walk(node.items, [...at, 0]);
  };
  walk(schema, []);
  const first = found[0];
  return first === undefined ? undefined : first.replace(/\[0\]/g, '[]');
}

function schemaAt(schema: JsonSchema, segments: readonly PathSegment[]): JsonSchema | undefined {
  let node: JsonSchema | undefined = schema;
  for (const seg of segments) {
    if (node === undefined) return undefined;
    if (typeof seg === 'number') {
      node = node.items;
    } else {
      const extra: boolean | JsonSchema | undefined = node.additionalProperties;
      node = node.properties?.[seg] ?? (typeof extra === 'object' ? extra : undefined);
    }
  }
  return node;
}

function valueAt(data: unknown, segments: readonly PathSegment[]): unknown {
  let cursor = data;
  for (const seg of segments) {
    if (typeof seg === 'number') cursor = Array.isArray(cursor) ? (cursor[seg] as unknown) : undefined;
    else cursor = isRecord(cursor) ? cursor[seg] : undefined;
  }
  return cursor;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function article(type: string): string {
  return type === 'object' || type === 'array' || type === 'integer' ? `an ${type}` : `a ${type}`;
}

function describeType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  if (typeof v === 'number' && !Number.isInteger(v)) return `a number (${v})`;
  return `${article(typeof v === 'number' ? 'integer' : typeof v)} (${show(v)})`;
}

/** A short rendering of a user's value for a message; long values are cut. */
function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}
