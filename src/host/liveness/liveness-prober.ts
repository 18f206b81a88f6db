/**
 * Data-plane liveness as a port: NSM's client pings the far end of each connection it holds and
 * reselects when the pings stop (the heal element's liveness check). The real prober sends ICMP
 * echoes through the connection's interface (icmp-liveness-prober.ts); tests of callers use
 * FakeLivenessProber (src/host/fake/liveness.ts).
 */
export interface LivenessTarget {
  /** Path of the netns the interface lives in (/var/run/netns/NAME, /proc/PID/ns/net); undefined = the agent's own. */
  readonly netns: string | undefined;
  /** The connection's kernel interface in that netns; the echoes leave through it. */
  readonly ifName: string;
  /** The connection's local address, without prefix length (IPv4 or IPv6). */
  readonly src: string;
  /** The address to ping (the service end), same family as `src`. */
  readonly dst: string;
  /**
   * Targets of one group share their path up to the far end (the same remote agent, reached through
   * the same WireGuard peer): while they answer, the prober may ping only some of them each interval
   * and count the others' silence as answered; when none of the pinged ones answers, every member
   * gets a miss. So the group's path is judged as fast as an ungrouped target's, and one member's
   * own break is found within a few more intervals (the prober's sweep). Groups are scoped to the
   * target's netns and address family. Undefined: pinged every interval on its own.
   */
  readonly group?: string;
}

export interface LivenessHandlers {
  /** The target stopped answering (or never did); called once per loss, with a reason for logs. */
  dead(reason: string): void;
  /** Replies came back after `dead`; called once per recovery. */
  alive?(): void;
}

export interface LivenessWatch {
  /** Stops probing this target; idempotent. No handler is called after it returns. */
  stop(): void;
}

export interface LivenessProber {
  /**
   * Pings `target` every interval; calls `dead` once after `misses` intervals in a row without a
   * reply (also when no reply ever came, and at once when the target's netns cannot be used), then
   * `alive` once when replies resume. A target with a `group` may be pinged less often while its
   * group answers (see LivenessTarget.group). Handlers run from the prober's timer, never inside
   * watch().
   */
  watch(target: LivenessTarget, on: LivenessHandlers): LivenessWatch;
  /** Stops every watch and releases the sockets; watch() afterwards throws. */
  close(): void;
}
