import type { ChannelOptions, ServerOptions } from '@grpc/grpc-js';

/**
 * Every gRPC knob we set, with the reason. grpc-js defaults suit a request/response web service,
 * not an agent holding long-lived watch streams across flaky networks (reliability §5.1).
 */
export interface ServerTuning {
  /**
   * 4 MiB, the gRPC default, written down so it cannot drift: NSM messages are a few KiB, and the
   * cap bounds what one hostile or buggy peer can make us buffer per message.
   */
  readonly maxReceiveMessageBytes: number;
  /**
   * 4 MiB (grpc-js default: unlimited). Go peers refuse more than 4 MiB anyway, so a bigger
   * message would only fail on their side after crossing the network; fail here instead.
   */
  readonly maxSendMessageBytes: number;
  /**
   * 60 s: the server pings idle connections so that a peer that vanished (half-open TCP, R26)
   * releases its streams and memory within keepalive time + timeout instead of never.
   */
  readonly keepaliveTimeMs: number;
  /** 20 s without a ping answer and the connection is destroyed (1.14.7 destroys it; older grpc-js hung, grpc-node#2953). */
  readonly keepaliveTimeoutMs: number;
  /**
   * Allow client pings on connections without calls. grpc-js servers do not enforce a ping policy
   * today (any rate is accepted); set so the intent survives if they start to, because our own
   * clients ping every 30 s while watch streams are open.
   */
  readonly keepalivePermitWithoutCalls: boolean;
  /**
   * 1000 streams per connection: a remote agent multiplexes all its monitors and watches over one
   * connection, so this is well above normal use but bounds one peer's share of the server.
   */
  readonly maxConcurrentStreams: number;
  /**
   * 30 min, below the SVID lifetime (SPIRE default 1 h): TLS checks certificates only at the
   * handshake, so connections must be renewed for rotated SVIDs and a changed trust bundle to take
   * effect (R5, R6). grpc-js adds ±10 % jitter so peers do not reconnect in step.
   */
  readonly maxConnectionAgeMs: number;
  /** 60 s for calls in flight to finish after the age GOAWAY; long streams then end and re-subscribe. */
  readonly maxConnectionAgeGraceMs: number;
  /** 5 min: connections without calls are closed, so clients that went away do not hold fds. */
  readonly maxConnectionIdleMs: number;
}

export const defaultServerTuning: ServerTuning = Object.freeze({
  maxReceiveMessageBytes: 4 * 1024 * 1024,
  maxSendMessageBytes: 4 * 1024 * 1024,
  keepaliveTimeMs: 60_000,
  keepaliveTimeoutMs: 20_000,
  keepalivePermitWithoutCalls: true,
  maxConcurrentStreams: 1000,
  maxConnectionAgeMs: 30 * 60_000,
  maxConnectionAgeGraceMs: 60_000,
  maxConnectionIdleMs: 5 * 60_000,
});

export function serverOptions(t: ServerTuning): ServerOptions {
  return {
    'grpc.max_receive_message_length': t.maxReceiveMessageBytes,
    'grpc.max_send_message_length': t.maxSendMessageBytes,
    'grpc.keepalive_time_ms': t.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': t.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': t.keepalivePermitWithoutCalls ? 1 : 0,
    'grpc.max_concurrent_streams': t.maxConcurrentStreams,
    'grpc.max_connection_age_ms': t.maxConnectionAgeMs,
    'grpc.max_connection_age_grace_ms': t.maxConnectionAgeGraceMs,
    'grpc.max_connection_idle_ms': t.maxConnectionIdleMs,
    // Channelz stays on although we serve no channelz (~10 µs a call): grpc-js 1.14's forceShutdown
    // destroys only the sessions channelz tracks, so with it off close() could not cancel calls in
    // flight after the grace period (test/unit/grpc/server.test.ts shows it).
  };
}

export interface ClientTuning {
  /** 4 MiB both ways, for the same reasons as the server. */
  readonly maxReceiveMessageBytes: number;
  readonly maxSendMessageBytes: number;
  /**
   * 30 s: without keepalive a watch stream over a dead network gets no event at all
   * (grpc-node#2578). Caveat: Go gRPC servers default to a 5 min minimum ping interval and answer
   * faster pings with GOAWAY too_many_pings; grpc-js then doubles its interval, so this settles by
   * itself, but dialing a strict upstream NSM registry may want keepaliveTimeMs ≥ 300 000.
   */
  readonly keepaliveTimeMs: number;
  /** 10 s to answer a ping before the connection counts as dead and reconnects. */
  readonly keepaliveTimeoutMs: number;
  /**
   * false: ping only while calls are open. Idle pings are exactly what Go servers punish by default
   * (PermitWithoutStream=false), and an idle connection has nothing to lose.
   */
  readonly keepalivePermitWithoutCalls: boolean;
  /**
   * 1 s first reconnect delay and 30 s cap (grpc-js: 1 s and 120 s, ×1.6, ±20 % jitter). A 2 min
   * cap leaves an agent blind for up to 2 min after the control plane returns (R19); the jitter
   * still spreads a fleet's reconnects (R24).
   */
  readonly initialReconnectBackoffMs: number;
  readonly maxReconnectBackoffMs: number;
}

export const defaultClientTuning: ClientTuning = Object.freeze({
  maxReceiveMessageBytes: 4 * 1024 * 1024,
  maxSendMessageBytes: 4 * 1024 * 1024,
  keepaliveTimeMs: 30_000,
  keepaliveTimeoutMs: 10_000,
  keepalivePermitWithoutCalls: false,
  initialReconnectBackoffMs: 1_000,
  maxReconnectBackoffMs: 30_000,
});

export function channelOptions(t: ClientTuning): ChannelOptions {
  return {
    'grpc.max_receive_message_length': t.maxReceiveMessageBytes,
    'grpc.max_send_message_length': t.maxSendMessageBytes,
    'grpc.keepalive_time_ms': t.keepaliveTimeMs,
    'grpc.keepalive_timeout_ms': t.keepaliveTimeoutMs,
    'grpc.keepalive_permit_without_calls': t.keepalivePermitWithoutCalls ? 1 : 0,
    'grpc.initial_reconnect_backoff_ms': t.initialReconnectBackoffMs,
    'grpc.max_reconnect_backoff_ms': t.maxReconnectBackoffMs,
    // Service config comes from us, never from DNS TXT records an attacker on the path could shape.
    'grpc.service_config_disable_resolution': 1,
  };
}

/** Default deadline for unary calls that set none; NSM's clients use 15 s (NSM_REQUEST_TIMEOUT). */
export const DEFAULT_UNARY_TIMEOUT_MS = 15_000;
