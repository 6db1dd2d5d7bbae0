/**
 * The six OCI hook arrays, in the order a runtime runs their phases. Apart from the schema so
 * that `cdi apply` (every container's start) can name them without loading valibot.
 */
export const HOOK_NAMES = ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"] as const;
export type HookName = typeof HOOK_NAMES[number];

/** Whether `name` is one of HOOK_NAMES (a loop: no builtin to compile on the start path). */
export function isHookName(name: string): name is HookName {
  for (let i = 0; i < HOOK_NAMES.length; i++) if (HOOK_NAMES[i] === name) return true;
  return false;
}
