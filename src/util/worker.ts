/**
 * Starting a module worker wherever its module is: beside the caller when running from source
 * (Bun or Deno); inside a compiled binary, under the path the build was given (relative to src/
 * or to the repository: the Makefile's WORKERS are extra entry points). A worker says
 * `{ ready: true }` once loaded; one that fails to load, or says nothing within `readyMs`, makes
 * way for the next place.
 */

/** How long a worker may take to load before the next place is tried. */
export const WORKER_READY_MS = 5000;

/** The places a worker module `file` under src/`folder`/ may be, beside `metaUrl` first. */
export function workerPlaces(metaUrl: string, folder: string, file: string): string[] {
  return [new URL(`./${file}`, metaUrl).href, `./${folder}/${file}`, `./src/${folder}/${file}`];
}

/**
 * The first of `places` that loads and says it is ready, or null when none does. The caller
 * sets its handlers on the worker it gets; messages it posts meanwhile wait in the worker's queue.
 */
export async function startWorker(places: readonly string[], readyMs = WORKER_READY_MS): Promise<Worker | null> {
  for (const place of places) {
    let w: Worker;
    try {
      w = new Worker(place, { type: "module" });
    } catch {
      continue;
    }
    const ready = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), readyMs);
      w.onmessage = (e: MessageEvent) => {
        if ((e.data as { ready?: true }).ready !== true) return;
        clearTimeout(timer);
        resolve(true);
      };
      w.onerror = (e: Event) => {
        e.preventDefault?.();
        clearTimeout(timer);
        resolve(false);
      };
    });
    w.onmessage = null;
    w.onerror = null;
    if (ready) return w;
    w.terminate();
  }
  return null;
}
