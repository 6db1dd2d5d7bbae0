/** The compiled daemon takes nothing from a `.env` or `bunfig.toml` in the folder it starts in. */
import { expect, test } from "bun:test";
import { existsSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO, tempDir } from "../helpers.ts";

const BIN = join(REPO, "dist", "gpu-bridge-host");

test.skipIf(!existsSync(BIN))("a .env in the working directory does not set the API token (needs make build)", async () => {
  const dir = tempDir("gbh-dotenv-");
  try {
    writeFileSync(join(dir.path, ".env"), "GPU_BRIDGE_API_TOKEN=planted-by-a-dotenv-file-0123\n");
    const proc = Bun.spawn([BIN, "serve", "--mock", "--listen", "127.0.0.1:0", "--state-dir", join(dir.path, "state")], {
      cwd: dir.path,
      stderr: "pipe",
      stdout: "ignore",
      env: { PATH: process.env.PATH ?? "" },
    });
    let text = "";
    const reader = (proc.stderr as ReadableStream<Uint8Array>).getReader();
    while (!/listening on/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    proc.kill("SIGTERM");
    await proc.exited;
    expect(text).toContain("listening on");
    expect(text).toContain("api-token (new)");
    expect(text).not.toContain("GPU_BRIDGE_API_TOKEN");
  } finally {
    dir.cleanup();
  }
});
