import { InvalidArgumentError } from 'commander';

/** For repeatable options (`--allow a --allow b`): commander calls this once per occurrence. */
export function collect(value: string, previous: readonly string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

/** `--label key=value`, repeatable; a malformed pair is a usage error (exit 2), not a failure. */
export function collectLabel(
  value: string,
  previous: Readonly<Record<string, string>> | undefined,
): Record<string, string> {
  const eq = value.indexOf('=');
  if (eq <= 0) throw new InvalidArgumentError(`expected key=value, got '${value}'`);
  return { ...previous, [value.slice(0, eq)]: value.slice(eq + 1) };
}

export function positiveInteger(value: string): number {
  if (!/^[1-9][0-9]*$/.test(value))
    throw new InvalidArgumentError(`expected a positive integer, got '${value}'`);
  return Number(value);
}
