/** The domain exposed services are named in (`web` → `web.nsm`), DESIGN.md §4 "Addresses". */
export const serviceDomain = 'nsm';

/** The name consumers use for an exposed service: `<service>.<domain>`. */
export function serviceDnsName(service: string, domain: string = serviceDomain): string {
  return `${service}.${domain}`;
}
