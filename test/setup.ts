/**
 * Preloaded by `bun test` (bunfig.toml): after the run's last test, every folder that
 * test/helpers.ts's `tempFolder` or `tempDir` made is removed, so a test run leaves nothing in
 * the temporary folder.
 */
import { afterAll } from "bun:test";
import { installTempSweeper, removeTempFolders } from "./helpers.ts";

installTempSweeper();
afterAll(removeTempFolders);
