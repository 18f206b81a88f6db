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

const units: Readonly<Record<string, number>> = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/** `90s`, `10m`, `1h`, `7d` → milliseconds; anything else is a usage error. */
export function duration(value: string): number {
  const m = /^([1-9][0-9]*)(s|m|h|d)$/.exec(value);
  if (!m) throw new InvalidArgumentError(`expected a duration like 10m, 1h or 7d, got '${value}'`);
  return Number(m[1]) * (units[m[2] ?? 's'] ?? 1_000);
}
