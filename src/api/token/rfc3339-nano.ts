import { AgentError } from '../../errors/index.js';

/**
 * Go's `time.RFC3339Nano` ("2006-01-02T15:04:05.999999999Z07:00"), the format of the
 * `nsm-client-token-expires` metadata (docs/nsm-api.md §5.2). Go writes the fraction with trailing
 * zeros trimmed (none at all for whole seconds) and `Z` for UTC; it parses any fraction length and
 * `Z` or a `±hh:mm` offset. Times are milliseconds since the epoch here: finer digits are read and
 * dropped (rounded down), which is what every expiry comparison in the agent needs.
 */

const RFC3339_RE =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(Z|([+-])(\d{2}):(\d{2}))$/;

/** Formats `ms` (UTC) the way Go's `t.Format(time.RFC3339Nano)` formats a UTC time. */
export function formatRfc3339Nano(ms: number): string {
  if (!Number.isFinite(ms)) {
    throw new AgentError('INVALID_ARGUMENT', `cannot format ${ms} as an RFC 3339 time`);
  }
  const iso = new Date(Math.floor(ms)).toISOString(); // 2026-01-02T15:04:05.123Z
  if (!/^\d{4}-/.test(iso)) {
    throw new AgentError('INVALID_ARGUMENT', `time ${ms} ms is outside years 0000..9999`);
  }
  const [whole, fraction = '000Z'] = iso.split('.');
  const digits = fraction.slice(0, 3).replace(/0+$/, '');
  return digits === '' ? `${whole}Z` : `${whole}.${digits}Z`;
}

/**
 * Parses an RFC 3339 time as Go's `time.Parse(time.RFC3339Nano, s)` accepts it; returns
 * milliseconds since the epoch. Throws INVALID_ARGUMENT saying which part is wrong.
 */
export function parseRfc3339Nano(text: string): number {
  const m = RFC3339_RE.exec(text);
  const bad = (why: string): AgentError =>
    new AgentError('INVALID_ARGUMENT', `"${clip(text)}" is not an RFC 3339 time: ${why}`, {
      hint: 'expected the form 2026-01-02T15:04:05.123456789Z or 2026-01-02T17:04:05+02:00',
    });
  if (!m) throw bad('expected YYYY-MM-DDThh:mm:ss[.fraction](Z|±hh:mm)');
  const [, y, mo, d, h, mi, s, frac, zone, sign, oh, om] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(s);
  if (month < 1 || month > 12) throw bad('month out of range');
  if (day < 1 || day > daysIn(year, month)) throw bad('day out of range');
  if (hour > 23) throw bad('hour out of range');
  if (minute > 59) throw bad('minute out of range');
  if (second > 59) throw bad('second out of range');
  let offsetMinutes = 0;
  if (zone !== 'Z') {
    const offH = Number(oh);
    const offM = Number(om);
    if (offH > 23 || offM > 59) throw bad('time zone offset out of range');
    offsetMinutes = (sign === '-' ? -1 : 1) * (offH * 60 + offM);
  }
  const millis = frac === undefined ? 0 : Number(frac.padEnd(9, '0').slice(0, 3));
  const utc = Date.UTC(year, month - 1, day, hour, minute, second, millis);
  // Date.UTC maps years 0..99 to 1900..1999; set the real year.
  const date = new Date(utc);
  date.setUTCFullYear(year, month - 1, day);
  return date.getTime() - offsetMinutes * 60_000;
}

function daysIn(year: number, month: number): number {
  if (month === 2) return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
  return [4, 6, 9, 11].includes(month) ? 30 : 31;
}

function clip(s: string): string {
  return s.length > 64 ? `${s.slice(0, 64)}…` : s;
}
