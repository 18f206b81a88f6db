import type { ConfigProblem } from './config-problems.js';

/** Thrown by parseConfigJson; carries a problem that points at the line and column. */
export class JsonSyntaxError extends Error {
  override readonly name = 'JsonSyntaxError';
  readonly problem: ConfigProblem;

  constructor(problem: ConfigProblem, cause: unknown) {
    super(problem.problem, { cause });
    this.problem = problem;
  }
}

/**
 * JSON.parse with an error a person can act on: line and column instead of a byte offset, and a
 * fix for the usual hand-editing slips (trailing comma, missing comma, comments, empty file).
 */
export function parseConfigJson(text: string): unknown {
  // Editors on some systems save a byte-order mark; it is not an error worth failing for.
  const body = text.startsWith('\uFEFF') ? text.slice(1) : text;
  try {
    return JSON.parse(body) as unknown;
  } catch (e: unknown) {
    throw new JsonSyntaxError(describeSyntaxError(body, e), e);
  }
}

function describeSyntaxError(text: string, e: unknown): ConfigProblem {
  if (text.trim() === '') {
    return { path: '', problem: 'is empty', fix: 'write {} to use the built-in defaults' };
  }
  const raw = e instanceof Error ? e.message : String(e);
  const position = /at position ([0-9]+)/.exec(raw);
  // V8 words some errors as `Unexpected token 'x', "...text..." is not valid JSON`; keep the first clause.
  const what = raw.replace(/ in JSON at position [0-9]+.*$/s, '').replace(/, ".*" is not valid JSON$/s, '');
  const pos = position ? Number(position[1]) : undefined;
  const where = pos === undefined ? '' : ` at ${lineColumn(text, pos)}`;
  const fix = pos === undefined ? undefined : guessFix(text, pos);
  const problem = `is not valid JSON: ${what}${where}`;
  return fix === undefined ? { path: '', problem } : { path: '', problem, fix };
}

function lineColumn(text: string, pos: number): string {
  const before = text.slice(0, pos);
  const line = before.split('\n').length;
  const column = pos - before.lastIndexOf('\n');
  return `line ${line}, column ${column}`;
}

function guessFix(text: string, pos: number): string | undefined {
  const rest = text.slice(pos);
  if (rest.startsWith('//') || rest.startsWith('/*')) return 'JSON has no comments; remove them';
  const before = text.slice(0, pos).trimEnd();
  if (before.endsWith(',') && /^\s*[}\]]/.test(rest))
    return 'remove the comma before it (JSON allows no trailing comma)';
  if (/^\s*"/.test(rest) && /[}\]"0-9el]$/.test(before)) return 'a comma is probably missing before it';
  if (rest.startsWith("'")) return 'use double quotes for strings and keys';
  return undefined;
}
