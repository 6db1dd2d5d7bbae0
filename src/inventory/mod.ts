/**
 * Inventory selection. The mock is tiny and loaded eagerly; native backends load FFI code and
 * are imported only when asked for, so `--mock --list` never touches it.
 */
import { mockBackend } from "./mock.ts";
import type { Logger } from "../util/log.ts";
import type { Backend } from "../config/defaults.ts";
import type { InventoryBackend } from "./types.ts";

export type { GpuInfo, InventoryBackend } from "./types.ts";
export { InventoryError } from "./errors.ts";

/** Which backend (`--mock` is `mock`), and where the native code reads the system from. */
export interface BackendChoice {
  readonly backend: Backend;
  readonly sysRoot?: string;
}

/** The backend for the given options. */
export async function selectBackend(choice: BackendChoice, log?: Logger): Promise<InventoryBackend> {
  const kind = choice.backend;
  if (kind === "mock") return mockBackend();
  const [{ openNativeBackend }, { loadFfiAdapter }] = await Promise.all([
    import("./native.ts"),
    import("../../ffi/loader.ts"),
  ]);
  return openNativeBackend({
    kind,
    adapter: await loadFfiAdapter(),
    env: process.env,
    sysRoot: choice.sysRoot ?? "/",
    ...(log !== undefined && { log }),
  });
}
