/**
 * A lease's share socket and token in its container (src/vram/share.ts): both files bind-mounted
 * read-only at fixed paths, named in the environment the consumer helper reads
 * (clients/python/). Kept apart from the lease device's other edits so each can change alone.
 */
import type { CdiContainerEdits } from "./schema.ts";

/** Where a lease's socket and token are on the host, and where its container sees them. */
export interface LeaseShareMount {
  readonly socket: string;
  readonly token: string;
  readonly socketInContainer: string;
  readonly tokenInContainer: string;
}

const OPTIONS = ["ro", "nosuid", "nodev", "bind"];

/** `edits` plus the share mounts and their environment; `edits` itself when the lease has no sharing. */
export function withShareMount(edits: CdiContainerEdits, share: LeaseShareMount | null): CdiContainerEdits {
  if (share === null) return edits;
  return {
    ...edits,
    env: [
      ...(edits.env ?? []),
      `GPU_BRIDGE_SHARE_SOCKET=${share.socketInContainer}`,
      `GPU_BRIDGE_SHARE_TOKEN_FILE=${share.tokenInContainer}`,
    ],
    mounts: [
      ...(edits.mounts ?? []),
      { hostPath: share.socket, containerPath: share.socketInContainer, options: OPTIONS },
      { hostPath: share.token, containerPath: share.tokenInContainer, options: OPTIONS },
    ],
  };
}
