import type { HostFacts } from '../../api/index.js';
import { AgentError } from '../../errors/index.js';
import type { HostFactsRecord } from '../hosts/host-record.js';

const MAX_FACT_LENGTH = 256;

/** Host facts from the wire, bounded and printable; absent facts are empty strings. */
export function checkHostFacts(facts: HostFacts | undefined): HostFactsRecord {
  const record: HostFactsRecord = {
    hostname: facts?.hostname ?? '',
    os: facts?.os ?? '',
    arch: facts?.arch ?? '',
    agentVersion: facts?.agentVersion ?? '',
  };
  for (const [name, value] of Object.entries(record) as [keyof HostFactsRecord, string][]) {
    if (value.length > MAX_FACT_LENGTH || /[^\x20-\x7e]/.test(value)) {
      throw new AgentError(
        'INVALID_ARGUMENT',
        `host fact ${name} must be at most ${MAX_FACT_LENGTH} printable ASCII characters`,
      );
    }
  }
  return record;
}
