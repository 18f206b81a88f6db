import { AgentError } from '../errors/index.js';
import type { JsonSchema } from './config-schema.js';

/**
 * A validator of exactly the JSON Schema subset config-schema.ts uses, in place of conf + Ajv
 * (2.6 MB of V8 heap in every agent process for one check at start-up). It reports what Ajv
 * (draft 2020-12, allErrors, strict) reports for these keywords: the same messages, at the same
 * places, in the same order, so config-problems.ts explains them exactly as before.
 *
 * A keyword outside the subset is an error, never ignored: `schemaProblems` lists them (a unit test
 * runs it over configSchema), and validating against such a schema throws.
 */

/** One failed check: where in the data (keys and array indexes; [] for the whole file) and Ajv's wording. */
export interface SchemaViolation {
  readonly path: readonly (string | number)[];
  readonly message: string;
}

type Keyword = keyof JsonSchema;

/** Keywords that only describe; they never fail. */
const annotations: readonly Keyword[] = ['$schema', 'title', 'description', 'default', 'examples'];

/**
 * The checking keywords in Ajv's evaluation order: untyped ones first, then one group per data type,
 * each run only when the data has that type (Ajv's RULES; draft 2020-12 vocabularies).
 */
const untypedKeywords: readonly Keyword[] = ['type', 'enum'];
const typeGroups: readonly { readonly type: string; readonly keywords: readonly Keyword[] }[] = [
  { type: 'number', keywords: ['maximum', 'minimum'] },
  { type: 'string', keywords: ['maxLength', 'minLength', 'pattern'] },
  { type: 'array', keywords: ['items'] },
  { type: 'object', keywords: ['required', 'propertyNames', 'additionalProperties', 'properties'] },
];

/** Every keyword this validator knows. */
export const supportedSchemaKeywords: ReadonlySet<string> = new Set<string>([
  ...annotations,
  ...untypedKeywords,
  ...typeGroups.flatMap((g) => g.keywords),
]);

const types = new Set(['object', 'array', 'string', 'integer', 'number', 'boolean', 'null']);

/**
 * What in `schema` this validator cannot check, one line each (`wireguard.port: unknown keyword "format"`);
 * empty when the whole schema is within the subset.
 */
export function schemaProblems(schema: JsonSchema): string[] {
  const out: string[] = [];
  const walk = (node: JsonSchema, at: string): void => {
    out.push(...nodeProblems(node, at));
    for (const [k, child] of Object.entries(node.properties ?? {})) {
      walk(child, at === '' ? k : `${at}.${k}`);
    }
    if (typeof node.additionalProperties === 'object') walk(node.additionalProperties, `${at}{*}`);
    if (node.propertyNames !== undefined) walk(node.propertyNames, `${at}{key}`);
    if (node.items !== undefined) walk(node.items, `${at}[]`);
  };
  walk(schema, '');
  return out;
}

function nodeProblems(node: JsonSchema, at: string): string[] {
  const where = at === '' ? '(root)' : at;
  const out: string[] = [];
  for (const k of Object.keys(node)) {
    if (!supportedSchemaKeywords.has(k)) out.push(`${where}: unknown keyword ${JSON.stringify(k)}`);
  }
  if (node.type !== undefined && !types.has(node.type)) {
    out.push(`${where}: unknown type ${JSON.stringify(node.type)}`);
  }
  if (node.pattern !== undefined) {
    try {
      new RegExp(node.pattern, 'u');
    } catch {
      out.push(`${where}: pattern ${JSON.stringify(node.pattern)} is not a valid regular expression`);
    }
  }
  return out;
}

/** Every way `data` breaks `schema`, in Ajv's order; empty when it is valid. */
export function schemaViolations(schema: JsonSchema, data: unknown): SchemaViolation[] {
  const out: SchemaViolation[] = [];
  check(schema, data, [], out);
  return out;
}

const checkedNodes = new WeakSet<JsonSchema>();
const regexes = new Map<string, RegExp>();

function check(
  s: JsonSchema,
  data: unknown,
  path: readonly (string | number)[],
  out: SchemaViolation[],
): void {
  if (!checkedNodes.has(s)) {
    const problems = nodeProblems(s, formatSchemaPath(path));
    if (problems.length > 0) {
      throw new AgentError(
        'INTERNAL',
        `the config schema uses what its validator cannot check: ${problems.join('; ')}`,
        {
          hint: 'teach src/config/validate.ts the keyword (matching Ajv draft 2020-12) or drop it from the schema',
        },
      );
    }
    checkedNodes.add(s);
  }
  const fail = (message: string): void => {
    out.push({ path, message });
  };
  // Ajv checks the type up front unless a group of keywords for exactly that type is present;
  // then the group reports it (after the untyped keywords).
  const typeGroupUsed =
    s.type !== undefined && typeGroups.some((g) => g.type === s.type && usesGroup(s, g.keywords));
  if (s.type !== undefined && !typeGroupUsed && !hasType(data, s.type)) fail(`must be ${s.type}`);
  if (s.enum !== undefined && !(s.enum as readonly unknown[]).includes(data)) {
    fail('must be equal to one of the allowed values');
  }
  for (const g of typeGroups) {
    if (!usesGroup(s, g.keywords)) continue;
    if (!hasType(data, g.type)) {
      if (s.type === g.type) fail(`must be ${s.type}`);
      continue;
    }
    for (const keyword of g.keywords) checkKeyword(s, keyword, data, path, out, fail);
  }
}

function checkKeyword(
  s: JsonSchema,
  keyword: Keyword,
  data: unknown,
  path: readonly (string | number)[],
  out: SchemaViolation[],
  fail: (message: string) => void,
): void {
  switch (keyword) {
    case 'maximum':
      if (s.maximum !== undefined && (data as number) > s.maximum) fail(`must be <= ${s.maximum}`);
      return;
    case 'minimum':
      if (s.minimum !== undefined && (data as number) < s.minimum) fail(`must be >= ${s.minimum}`);
      return;
    case 'maxLength':
      if (s.maxLength !== undefined && codePoints(data as string) > s.maxLength) {
        fail(`must NOT have more than ${s.maxLength} characters`);
      }
      return;
    case 'minLength':
      if (s.minLength !== undefined && codePoints(data as string) < s.minLength) {
        fail(`must NOT have fewer than ${s.minLength} characters`);
      }
      return;
    case 'pattern':
      if (s.pattern !== undefined && !regex(s.pattern).test(data as string)) {
        fail(`must match pattern "${s.pattern}"`);
      }
      return;
    case 'items':
      if (s.items !== undefined) {
        const items = s.items;
        (data as unknown[]).forEach((item, i) => {
          check(items, item, [...path, i], out);
        });
      }
      return;
    case 'required':
      for (const key of s.required ?? []) {
        if (!Object.hasOwn(data as object, key)) fail(`must have required property '${key}'`);
      }
      return;
    case 'propertyNames':
      if (s.propertyNames !== undefined) {
        for (const key of Object.keys(data as object)) {
          // Ajv reports the name's own failures at the object, followed by its summary.
          const before = out.length;
          check(s.propertyNames, key, path, out);
          if (out.length > before) fail('property name must be valid');
        }
      }
      return;
    case 'additionalProperties': {
      const extra = s.additionalProperties;
      if (extra === undefined || extra === true) return;
      const record = data as Record<string, unknown>;
      for (const key of Object.keys(record)) {
        if (s.properties !== undefined && Object.hasOwn(s.properties, key)) continue;
        if (extra === false) fail('must NOT have additional properties');
        else check(extra, record[key], [...path, key], out);
      }
      return;
    }
    case 'properties': {
      const record = data as Record<string, unknown>;
      for (const [key, child] of Object.entries(s.properties ?? {})) {
        if (Object.hasOwn(record, key)) check(child, record[key], [...path, key], out);
      }
      return;
    }
    default:
      return;
  }
}

/** Ajv runs a type's group when any of its keywords is present (`additionalProperties: true` too). */
function usesGroup(s: JsonSchema, keywords: readonly Keyword[]): boolean {
  return keywords.some((k) => s[k] !== undefined);
}

/** Ajv's type checks with strictNumbers: NaN and ±Infinity are not numbers. */
function hasType(data: unknown, type: string): boolean {
  switch (type) {
    case 'object':
      return typeof data === 'object' && data !== null && !Array.isArray(data);
    case 'array':
      return Array.isArray(data);
    case 'string':
      return typeof data === 'string';
    case 'number':
      return typeof data === 'number' && Number.isFinite(data);
    case 'integer':
      return typeof data === 'number' && Number.isInteger(data);
    case 'boolean':
      return typeof data === 'boolean';
    case 'null':
      return data === null;
    default:
      return false;
  }
}

/** String length as Ajv counts it (unicode: a surrogate pair is one character). */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

function regex(pattern: string): RegExp {
  let re = regexes.get(pattern);
  if (re === undefined) {
    re = new RegExp(pattern, 'u');
    regexes.set(pattern, re);
  }
  return re;
}

function formatSchemaPath(path: readonly (string | number)[]): string {
  return path
    .map((p) => (typeof p === 'number' ? '[]' : `.${p}`))
    .join('')
    .replace(/^\./, '');
}
