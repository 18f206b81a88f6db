export { runPeriodically, systemClock, sleepWith } from './clock.js';
export type { Clock, TimerHandle } from './clock.js';
export {
  ProcessRunner,
  checkResult,
  commandLabel,
  defaultTimeoutMs,
  effectiveArgv,
  execFailed,
  maxOutputBytes,
} from './command-runner.js';
export type { CommandRunner, RunOptions, RunResult } from './command-runner.js';
export { IpBatchRunner } from './ip-batch-runner.js';
export type { IpBatchRunnerOptions } from './ip-batch-runner.js';
export { processExists, signalProcess, spawnDetached } from './detached-process.js';
export type { DetachedStartOptions, DetachedStarter } from './detached-process.js';
export {
  Netns,
  checkNetnsName,
  namedNetnsDir,
  namedNetnsPath,
  netnsPath,
  parseNetnsList,
  parseNetnsRef,
  pidNetnsPath,
} from './netns.js';
export type { NetnsRef } from './netns.js';
export { isUdpPortFree } from './udp-port.js';
export { systemRandom } from './random.js';
export type { Random } from './random.js';
export {
  HostsFile,
  defaultHostsPath,
  hostsBlockBegin,
  hostsBlockEnd,
  parseHostsBlock,
  renderHostsBlock,
} from './hosts-file.js';
export type { HostsEntry, HostsFileOptions } from './hosts-file.js';
export { PUBLIC_FILE_MODE, SECRET_FILE_MODE, syncDir, writeFileAtomic } from './atomic-write.js';
export { icmpLivenessProber } from './liveness/index.js';
export type {
  IcmpProberOptions,
  LivenessHandlers,
  LivenessProber,
  LivenessTarget,
  LivenessWatch,
} from './liveness/index.js';
