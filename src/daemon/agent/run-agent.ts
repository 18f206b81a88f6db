import { AgentError } from '../../errors/index.js';
import type { AgentReadyInfo, AgentRunOptions } from '../../localapi/index.js';

/** `nsm-agent run`: the agent daemon (being wired in issue 5). */
export function runAgent(
  _options: AgentRunOptions,
  _signal: AbortSignal,
  _ready: (info: AgentReadyInfo) => void,
): Promise<void> {
  return Promise.reject(new AgentError('FAILED_PRECONDITION', "'nsm-agent run' is not wired yet"));
}
