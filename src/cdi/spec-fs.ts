/**
 * How spec folders are read. `cdi apply` runs on every container's start, and on Bun
 * `node:fs` alone costs about two milliseconds to load: where the runtime has its own file
 * calls (src/runtime/files.ts) the folder is listed and files read with them (`runtimeSpecFs`),
 * elsewhere with node:fs, loaded on demand (`nodeSpecFs`).
 *
 * Both read only regular files (a symlink to one is read: distributions and nvidia-ctk setups
 * link specs into /etc/cdi, and the reference library follows links), and at most `cap` bytes of
 * one: a device (`/dev/zero`), a FIFO or a socket, directly or through a link, or a file over
 * the cap, is refused with SpecFileError (spec-format.ts) naming it and why, before anything is
 * read from it.
 */
import { type RuntimeFiles, runtimeFiles } from "../runtime/files.ts";
import { notRegular, tooBig } from "./spec-format.ts";

export interface SpecFs {
  /** The names of the files in `dir` (not subfolders, not recursive); null when `dir` does not exist. */
  files(dir: string): string[] | null;
  /** The text of the regular file `path` if it holds at most `cap` bytes; else SpecFileError. */
  read(path: string, cap: number): Promise<string>;
}

/** Spec folders through the runtime's own calls. */
export function runtimeSpecFs(rt: RuntimeFiles): SpecFs {
  return {
    files(dir) {
      try {
        return rt.listFiles(dir);
      } catch (error) {
        if ((error as { code?: string }).code === "ENOENT") return null;
        throw error;
      }
    },
    // Read-only, on the runtime's I/O threads. Never mapped (RuntimeFiles.mapFile): that opens
    // the file read-write, which a spec under /etc must never see (audit rules and runtime
    // security tools such as Falco report every open for writing below /etc).
    read(path, cap) {
      // One stat, no read: a device, FIFO or socket (size Infinity) is never opened, so
      // neither an endless read nor an open that waits for a writer can start.
      const size = rt.sizeOf(path);
      if (size === Infinity) return Promise.reject(notRegular(path));
      if (size > cap) return Promise.reject(tooBig(path, cap, size));
      // At most the size just seen: a file that grew, or was replaced since, is still read
      // boundedly. Size 0 is also what an absent file (a dangling link) shows: read, to name it.
      return rt.readText(path, size === 0 ? undefined : size);
    },
  };
}

/** Spec folders through node:fs (Deno, Node, and tests), loaded when first asked for. */
export async function nodeSpecFs(): Promise<SpecFs> {
  const [{ readdirSync, statSync }, { join }, { NotRegularFileError, readCapped }] = await Promise.all([
    import("node:fs"),
    import("node:path"),
    import("../util/files.ts"),
  ]);
  // Not a folder (a folder named x.json is not a spec). A device or FIFO is listed, so that
  // reading it refuses it by name; a dangling link is listed too, and its read names it.
  const notFolder = (path: string) => {
    try {
      return !statSync(path).isDirectory();
    } catch {
      return true;
    }
  };
  return {
    files(dir) {
      let names: string[];
      try {
        names = readdirSync(dir);
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code === "ENOENT") return null;
        throw error;
      }
      return names.filter((name) => notFolder(join(dir, name)));
    },
    read(path, cap) {
      let bytes: Uint8Array | null;
      try {
        bytes = readCapped(path, cap, true);
      } catch (error) {
        return Promise.reject(error instanceof NotRegularFileError ? notRegular(path) : error);
      }
      return bytes === null ? Promise.reject(tooBig(path, cap)) : Promise.resolve(new TextDecoder().decode(bytes));
    },
  };
}

/** The runtime's reader, without an await; null where the runtime has none (then loadSpecFs). */
export function specFsNow(): SpecFs | null {
  const rt = runtimeFiles();
  return rt === null ? null : runtimeSpecFs(rt);
}

/** The reader for this runtime: its own calls at once, node:fs loaded on demand elsewhere. */
export async function loadSpecFs(): Promise<SpecFs> {
  return specFsNow() ?? (await nodeSpecFs());
}
