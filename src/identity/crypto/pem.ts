import { AgentError } from '../../errors/index.js';

/** DER bytes as one PEM block of the given label (`CERTIFICATE`, `PRIVATE KEY`, …). */
export function toPem(label: string, der: Uint8Array): string {
  const lines =
    Buffer.from(der)
      .toString('base64')
      .match(/.{1,64}/g) ?? [];
  return `-----BEGIN ${label}-----\n${lines.join('\n')}\n-----END ${label}-----\n`;
}

/** Several certificates as one PEM text (a chain or a bundle). */
export function certificatesPem(ders: readonly Uint8Array[]): string {
  return ders.map((d) => toPem('CERTIFICATE', d)).join('');
}

/** The DER of every PEM block with `label` in `text`, in order. */
export function pemBlocks(text: string, label: string): Uint8Array[] {
  const re = new RegExp(`-----BEGIN ${label}-----([\\s\\S]+?)-----END ${label}-----`, 'g');
  const out: Uint8Array[] = [];
  for (const m of text.matchAll(re)) out.push(new Uint8Array(Buffer.from(m[1] ?? '', 'base64')));
  return out;
}

/** The single PEM block with `label` in `text`; `what` names the file for the error. */
export function onePemBlock(text: string, label: string, what: string): Uint8Array {
  const blocks = pemBlocks(text, label);
  const first = blocks[0];
  if (blocks.length !== 1 || first === undefined) {
    throw new AgentError(
      'FAILED_PRECONDITION',
      `${what} should hold exactly one ${label} PEM block, it holds ${blocks.length}`,
    );
  }
  return first;
}
