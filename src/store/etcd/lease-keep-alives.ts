import { AgentError } from '../../errors/index.js';
import type { Clock, TimerHandle } from '../../host/index.js';
import type { BidiStream } from '../../api/grpc/index.js';

/** The shape of etcd's LeaseKeepAlive messages that we use. */
export interface KeepAliveRequest {
  readonly ID: bigint;
}
export interface KeepAliveResponse {
  readonly ID: bigint;
  readonly TTL: bigint;
}

interface Waiter {
  readonly resolve: (ttlSeconds: number) => void;
  readonly reject: (e: Error) => void;
  readonly timer: TimerHandle;
}

/**
 * etcd renews leases over one long-lived bidi stream: write an ID, read back its new TTL. This keeps
 * one stream open (reopened after it breaks), matches answers to waiting callers by lease id in
 * order, and bounds every wait.
 */
export class LeaseKeepAlives {
  readonly #open: () => BidiStream<KeepAliveRequest, KeepAliveResponse>;
  readonly #clock: Clock;
  readonly #timeoutMs: number;
  readonly #target: string;
  #stream: BidiStream<KeepAliveRequest, KeepAliveResponse> | undefined;
  readonly #waiting = new Map<bigint, Waiter[]>();

  constructor(options: {
    readonly open: () => BidiStream<KeepAliveRequest, KeepAliveResponse>;
    readonly clock: Clock;
    readonly timeoutMs: number;
    readonly target: string;
  }) {
    this.#open = options.open;
    this.#clock = options.clock;
    this.#timeoutMs = options.timeoutMs;
    this.#target = options.target;
  }

  /** Renews lease `id`; resolves with its new TTL in seconds (≤ 0: the lease no longer exists). */
  keepAlive(id: bigint): Promise<number> {
    return new Promise((resolve, reject) => {
      const stream = this.#ensureStream();
      const list = this.#waiting.get(id) ?? [];
      const waiter: Waiter = {
        resolve,
        reject,
        timer: this.#clock.setTimer(this.#timeoutMs, () => {
          const l = this.#waiting.get(id);
          const i = l?.indexOf(waiter) ?? -1;
          if (l && i >= 0) l.splice(i, 1);
          reject(
            new AgentError(
              'UNAVAILABLE',
              `etcd at ${this.#target} did not answer a lease keep-alive in time`,
              {
                hint: 'check that etcd is running and healthy; the keep-alive can be retried',
              },
            ),
          );
        }),
      };
      list.push(waiter);
      this.#waiting.set(id, list);
      stream.write({ ID: id });
    });
  }

  /** Drops the stream (the store moved to another member); waiting callers fail and may retry. */
  reset(): void {
    const s = this.#stream;
    if (!s) return;
    this.#stream = undefined;
    s.cancel();
    this.#failAll(
      new AgentError(
        'UNAVAILABLE',
        `the keep-alive stream to etcd at ${this.#target} was moved to another member`,
        {
          hint: 'retry the keep-alive',
        },
      ),
    );
  }

  close(): void {
    const s = this.#stream;
    this.#stream = undefined;
    s?.cancel();
    this.#failAll(new AgentError('UNAVAILABLE', 'the etcd store is closed'));
  }

  #ensureStream(): BidiStream<KeepAliveRequest, KeepAliveResponse> {
    if (this.#stream) return this.#stream;
    const stream = this.#open();
    this.#stream = stream;
    void this.#read(stream);
    return stream;
  }

  async #read(stream: BidiStream<KeepAliveRequest, KeepAliveResponse>): Promise<void> {
    let failure: Error = new AgentError(
      'UNAVAILABLE',
      `etcd at ${this.#target} ended the keep-alive stream`,
      {
        hint: 'retry; the stream is reopened on the next keep-alive',
      },
    );
    try {
      for await (const r of stream) {
        const w = this.#waiting.get(r.ID)?.shift();
        if (!w) continue;
        w.timer.cancel();
        w.resolve(Number(r.TTL));
      }
    } catch (e: unknown) {
      failure = AgentError.wrap(
        e,
        'UNAVAILABLE',
        `lost the lease keep-alive stream to etcd at ${this.#target}`,
        'check that etcd is running; the keep-alive can be retried',
      );
    }
    if (this.#stream === stream) {
      this.#stream = undefined;
      this.#failAll(failure);
    }
  }

  #failAll(e: Error): void {
    for (const list of this.#waiting.values()) {
      for (const w of list) {
        w.timer.cancel();
        w.reject(e);
      }
    }
    this.#waiting.clear();
  }
}
