// The data-plane test bed from the command line (see test/helpers/testbed.ts):
//   node --import tsx scripts/testbed.ts up --hosts 3 --prefix nsmt [--subnet 10.123.0]
//   node --import tsx scripts/testbed.ts down --prefix nsmt
//   node --import tsx scripts/testbed.ts status --prefix nsmt [--json]
// Needs root. `down` also cleans up after a crashed test (processes, sockets, namespaces).
import { parseArgs } from 'node:util';
import { testbedDown, testbedStatus, testbedUp } from '../test/helpers/testbed.js';

const usage =
  'usage: testbed.ts up --hosts N --prefix P [--subnet A.B.C] | down --prefix P | status --prefix P [--json]';

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    options: {
      hosts: { type: 'string', default: '2' },
      prefix: { type: 'string', default: 'nsmt' },
      subnet: { type: 'string' },
      json: { type: 'boolean', default: false },
      hold: { type: 'boolean', default: false },
    },
  });
  const [command] = positionals;
  const prefix = values.prefix;
  switch (command) {
    case 'up': {
      const started = performance.now();
      const bed = await testbedUp({
        prefix,
        hosts: Number(values.hosts),
        ...(values.subnet === undefined ? {} : { subnet: values.subnet }),
      });
      const ms = Math.round(performance.now() - started);
      if (values.json) console.log(JSON.stringify(bed, null, 2));
      else {
        for (const h of bed.hosts)
          console.log(`${h.netns}  ${h.dev} ${h.underlayCidr}  (WireGuard device name: ${h.wgDevice})`);
        console.log(
          `test bed ${prefix} up: ${bed.hosts.length} hosts on bridge br0 in netns ${bed.bridgeNetns} (${ms} ms)`,
        );
        console.log(
          `try: ip netns exec ${bed.hosts[0]?.netns ?? ''} ping -c1 ${bed.hosts.at(-1)?.underlayIp ?? ''}`,
        );
      }
      if (values.hold) {
        console.log('READY');
        await new Promise(() => undefined);
      }
      return 0;
    }
    case 'down': {
      const r = await testbedDown(prefix);
      if (values.json) console.log(JSON.stringify(r, null, 2));
      else
        console.log(
          `test bed ${prefix} down: removed ${r.removedNetns.length} namespaces, stopped ${r.killedProcesses.length} processes, removed ${r.removedSockets.length} sockets`,
        );
      return 0;
    }
    case 'status': {
      const s = await testbedStatus(prefix);
      if (values.json) console.log(JSON.stringify(s, null, 2));
      else {
        if (s.netns.length === 0) console.log(`no test bed with prefix ${prefix}`);
        for (const n of s.netns)
          console.log(`${n}  ${(s.addresses[n] ?? []).map((a) => `${a.dev} ${a.cidr}`).join(', ')}`);
        for (const p of s.wireguardGo) console.log(`wireguard-go pid ${p.pid} device ${p.device}`);
        for (const f of s.sockets) console.log(`socket ${f}`);
      }
      return 0;
    }
    default:
      console.error(usage);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e instanceof Error ? e.message : String(e));
    process.exit(1);
  },
);
