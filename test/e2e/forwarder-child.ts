// Child process of the forwarder e2e tests, standing in for an agent: applies host <i>'s desired
// state with a forwarder whose record is in <stateDir>, then prints READY and waits to be killed.
// Private keys arrive on stdin as JSON, never in argv. With NSM_FORWARDER_CRASH_AFTER=<k> it
// kills itself with SIGKILL right after step k of the apply (0: intent record written, 1..n: ops).
// With NSM_FORWARDER_VIA_ENTRIES=1 it applies the device alone first, then all entries with one
// setEntries() — the apply a connection setup makes, planned from the host as the first apply left
// it (no read) — and the crash point counts the steps of that second apply.
import { text } from 'node:stream/consumers';
import { desiredFor, forwarderFor } from './forwarder-fixture.js';

const [prefix = '', index = '1', stateDir = '', logDir = ''] = process.argv.slice(2);
const crashAfter = process.env['NSM_FORWARDER_CRASH_AFTER'];
const viaEntries = process.env['NSM_FORWARDER_VIA_ENTRIES'] === '1';
let armed = !viaEntries;
const keys = JSON.parse(await text(process.stdin)) as string[];
const i = Number(index);
const { forwarder } = forwarderFor(prefix, i, {
  stateDir,
  logDir,
  onStep: (s) => {
    process.stdout.write(`STEP ${s.index} ${s.name}\n`);
    if (armed && crashAfter !== undefined && s.index === Number(crashAfter))
      process.kill(process.pid, 'SIGKILL');
  },
});
const desired = desiredFor(prefix, i, keys);
if (viaEntries) {
  await forwarder.apply({ ...(desired.device === undefined ? {} : { device: desired.device }), entries: {} });
  armed = true;
  await forwarder.setEntries(new Map(Object.entries(desired.entries)));
} else {
  await forwarder.apply(desired);
}
process.stdout.write('READY\n');
setInterval(() => undefined, 60_000);
