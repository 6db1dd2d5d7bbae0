/**
 * Runtime detection: done once at start, the result passed down. Each adapter is imported
 * only on its own runtime, so neither ever sees the other's globals.
 */
import type { Runtime } from "./types.ts";

export type { Runtime };

/** The adapter for the runtime executing this code. */
export async function detectRuntime(): Promise<Runtime> {
  if ("Bun" in globalThis) return (await import("./bun.ts")).bunRuntime();
  if ("Deno" in globalThis) return (await import("./deno.ts")).denoRuntime();
  throw new Error("Cannot start: gpu-bridge-host runs on Bun or Deno, and this is neither");
}
