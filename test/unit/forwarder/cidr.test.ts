// The forwarder compares desired prefixes with what the kernel prints as strings: both must come out
// in one canonical form (host bits cleared, IPv6 per RFC 5952), and anything else is refused.
import test from 'ava';
import { canonicalAddress, canonicalPrefix, hostPrefix } from '../../../src/forwarder/cidr.js';

test('prefixes, addresses and host prefixes come out in the kernel’s canonical text', (t) => {
  const cases: [string, string, string, string][] = [
    ['10.1.2.3/24', '10.1.2.0/24', '10.1.2.3/24', '10.1.2.3/32'],
    ['10.1.2.3', '10.1.2.3/32', '10.1.2.3/32', '10.1.2.3/32'],
    ['0.0.0.0/0', '0.0.0.0/0', '0.0.0.0/0', '0.0.0.0/32'],
    ['fd00::1/64', 'fd00::/64', 'fd00::1/64', 'fd00::1/128'],
    ['FD00:0:0:0:0:0:0:1', 'fd00::1/128', 'fd00::1/128', 'fd00::1/128'],
    ['2001:db8:0:0:1:0:0:1/128', '2001:db8::1:0:0:1/128', '2001:db8::1:0:0:1/128', '2001:db8::1:0:0:1/128'],
    ['::ffff:1.2.3.4/96', '::ffff:0:0/96', '::ffff:102:304/96', '::ffff:102:304/128'],
    ['::/0', '::/0', '::/0', '::/128'],
    ['fe80::1:2/10', 'fe80::/10', 'fe80::1:2/10', 'fe80::1:2/128'],
  ];
  for (const [input, prefix, address, host] of cases) {
    t.is(canonicalPrefix(input), prefix, input);
    t.is(canonicalAddress(input), address, input);
    t.is(hostPrefix(input), host, input);
  }
});

test('what is not an address or prefix is refused with how to write one', (t) => {
  for (const bad of [
    '1.2.3.4/33',
    'x/3',
    '::1/129',
    'web.nsm/32',
    '1.2.3.4/',
    'fd00::1/',
    '1.2.3.4/ 8',
    '1.2.3.4/0x8',
  ]) {
    for (const parse of [canonicalPrefix, canonicalAddress]) {
      t.throws(
        () => parse(bad),
        {
          message: /is not an IP prefix; write prefixes as address\/length/,
        },
        `${parse.name}(${bad})`,
      );
    }
  }
});
