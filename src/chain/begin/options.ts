export interface BeginOptions {
  /** Upper bound for one event (Request or Close), whoever started it. Default 60 s, as NSM. */
  readonly eventTimeoutMs?: number;
}
