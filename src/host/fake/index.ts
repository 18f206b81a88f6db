export { FakeClock, flushMicrotasks } from './clock.js';
export { MemoryWireGuard } from './memory-wireguard.js';
export type { MemoryWireGuardOp } from './memory-wireguard.js';
export { SequenceRandom } from './random.js';
export { RecordingRunner } from './recording-runner.js';
export type { RecordedCall, ScriptedReply } from './recording-runner.js';
export { FakeUdpSocketBuffers } from './fake-udp-socket-buffers.js';
export { FakeLivenessProber } from './liveness.js';
export type { FakeLivenessWatch, LivenessMatch } from './liveness.js';
