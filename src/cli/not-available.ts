import { AgentError } from '../errors/index.js';
import { agentVersion } from '../util/index.js';

/** The commands this version really implements; named in the hint so the user knows what works. */
const available = [
  'run',
  'status',
  'connect',
  'disconnect',
  'expose',
  'unexpose',
  'services',
  'server init',
  'server run',
  'server issue',
  'token create|list|revoke',
  'hosts list|revoke',
  'enroll',
  'doctor',
  'config validate',
  'config show',
  'config schema',
  'version',
];

/**
 * The action of a command the design names but this version does not have yet. Its arguments and
 * options are already parsed (so usage errors still exit 2 and --help is the real map of the
 * product); running it fails with exit code 1, never a silent success.
 */
export function notAvailable(command: string, purpose: string): never {
  throw new AgentError(
    'FAILED_PRECONDITION',
    `'nsm-agent ${command}' (${purpose}) is not available yet in nsm-agent ${agentVersion()}`,
    {
      hint: `this version implements: ${available.join(', ')}`,
      details: { notAvailable: command },
    },
  );
}
