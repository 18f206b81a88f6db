// Child process for the kill -9 test: enrols, and SIGKILLs itself at the step named in argv.
// Usage: node --import tsx enrol-child.ts <stateDir> <crashAt|none>   (token on stdin, never in argv)
import 'reflect-metadata';
import { enrollHost } from '../../../src/identity/index.js';
import type { EnrolStep } from '../../../src/identity/index.js';

const [stateDir, crashAt] = process.argv.slice(2);
if (stateDir === undefined || crashAt === undefined)
  throw new Error('usage: enrol-child <stateDir> <crashAt>');
let token = '';
process.stdin.setEncoding('utf8');
for await (const chunk of process.stdin) token += String(chunk);

await enrollHost({
  token,
  stateDir,
  hostFacts: { hostname: 'child', os: 'linux', arch: 'x64', agentVersion: '0.1.0' },
  onStep: (step: EnrolStep) => {
    if (step === crashAt) process.kill(process.pid, 'SIGKILL');
  },
});
console.log('enrolled');
