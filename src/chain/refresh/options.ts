export interface RefreshOptions {
  /** Pause between retries of a failed refresh (default 200 ms, as upstream). */
  readonly retryMs?: number;
}
