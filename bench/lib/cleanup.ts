// Runs a benchmark so that its cleanup runs on every way out: normal end, a thrown error, and
// SIGINT/SIGTERM/SIGHUP (after which the process exits with 128 + signal number).

export async function runWithCleanup(
  main: () => Promise<void>,
  cleanup: () => Promise<void>,
): Promise<number> {
  let cleaned: Promise<void> | undefined;
  const once = (): Promise<void> => (cleaned ??= cleanup());
  const signals: Readonly<Record<string, number>> = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 };
  const handlers = Object.entries(signals).map(([sig, n]) => {
    const h = (): void => {
      process.stderr.write(`\n${sig}: cleaning up…\n`);
      void once().finally(() => process.exit(128 + n));
    };
    process.on(sig as NodeJS.Signals, h);
    return [sig, h] as const;
  });
  try {
    await main();
    return 0;
  } catch (e: unknown) {
    process.stderr.write(`benchmark failed: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
    return 1;
  } finally {
    await once();
    for (const [sig, h] of handlers) process.off(sig, h);
  }
}
