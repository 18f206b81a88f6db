import { AgentError } from '../../errors/index.js';

/**
 * Selector values in a NetworkService's `matches` may be Go `text/template`s rendered with the
 * request's labels as data (nsm-api.md §4.8), e.g. `nodeName: "{{.nodeName}}"` to pick an NSE on the
 * client's node. NSM only ever uses `{{.key}}` (optionally with Go's `{{- ... -}}` trim markers), so
 * that is what we render; any other action (`{{if}}`, pipelines, `{{.}}`, `{{.a.b}}`, comments,
 * variables) or an unclosed `{{` is refused with an error instead of silently matching differently
 * from Go.
 */

const OPEN = '{{';
const CLOSE = '}}';
// A Go field name (identifier) after the dot; trim markers need white space next to the dash.
const FIELD = /^(-[ \t\r\n])?[ \t\r\n]*\.([\p{L}_][\p{L}\p{Nd}_]*)[ \t\r\n]*([ \t\r\n]-)?$/u;
const TRAILING_SPACE = /[ \t\r\n]+$/;
const LEADING_SPACE = /^[ \t\r\n]+/;

/** What Go prints for a key the data map does not have (missingkey=default). */
export const GO_NO_VALUE = '<no value>';

/**
 * Renders `value` with `labels` as the template data, as Go's text/template would for the `{{.key}}`
 * subset. Throws INVALID_ARGUMENT for template syntax outside that subset.
 */
export function renderSelectorValue(value: string, labels: Readonly<Record<string, string>>): string {
  let out = '';
  let rest = value;
  let trimNextLeft = false;
  for (;;) {
    const open = rest.indexOf(OPEN);
    let text = open < 0 ? rest : rest.slice(0, open);
    if (trimNextLeft) text = text.replace(LEADING_SPACE, '');
    if (open < 0) return out + text;
    const close = rest.indexOf(CLOSE, open + OPEN.length);
    if (close < 0) throw unsupported(value, 'an unclosed "{{"');
    const action = rest.slice(open + OPEN.length, close);
    const m = FIELD.exec(action);
    if (!m) throw unsupported(value, `the action "{{${action}}}"`);
    if (m[1]) text = text.replace(TRAILING_SPACE, '');
    out += text;
    const key = m[2] ?? '';
    out += Object.hasOwn(labels, key) ? (labels[key] ?? '') : GO_NO_VALUE;
    trimNextLeft = m[3] !== undefined;
    rest = rest.slice(close + CLOSE.length);
  }
}

function unsupported(value: string, what: string): AgentError {
  return new AgentError(
    'INVALID_ARGUMENT',
    `network service selector value ${JSON.stringify(value)} uses ${what}, which nsm-agent does not render`,
    {
      hint: 'selector values may only use {{.labelName}} (the request label of that name); fix the network service matches and register it again',
    },
  );
}
