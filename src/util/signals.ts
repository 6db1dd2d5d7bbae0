/** Shutdown signals, as one promise. */

/** Resolves with the name of the first SIGINT or SIGTERM from now on. */
export function stopSignal(): Promise<string> {
  return new Promise<string>((resolve) => {
    process.once("SIGINT", () => resolve("SIGINT"));
    process.once("SIGTERM", () => resolve("SIGTERM"));
  });
}
