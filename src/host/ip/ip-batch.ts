import { AgentError } from '../../errors/index.js';

/**
 * The stdin of `ip -batch -`: one `ip` command per line, without the leading `ip`. `ip` splits batch
 * lines on blanks and treats quotes and `#` specially, so words with those characters are refused
 * rather than quoted: interface names, prefixes and numbers never need them.
 */
export function batchScript(commands: readonly (readonly string[])[]): string {
  return commands
    .map((words) => {
      if (words.length === 0) throw badWord('', 'an empty command');
      for (const w of words) {
        if (w === '' || /[\s"'\\#]/.test(w)) throw badWord(w, 'a word ip -batch would split or quote');
      }
      return `${words.join(' ')}\n`;
    })
    .join('');
}

function badWord(word: string, what: string): AgentError {
  return new AgentError('INVALID_ARGUMENT', `cannot put ${what} into 'ip -batch': ${JSON.stringify(word)}`, {
    hint: 'interface names, addresses and route fields must not contain blanks, quotes, backslashes or #',
  });
}
