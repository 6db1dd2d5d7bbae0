/**
 * Writes gpu-bridge-host(1) to stdout (src/cli/man.ts). The date is $SOURCE_DATE_EPOCH's, so a
 * rebuild of the same commit writes the same page; the Makefile sets it from the last commit.
 */
import { manPage } from "../src/cli/man.ts";

const epoch = Number(process.env.SOURCE_DATE_EPOCH ?? Math.floor(Date.now() / 1000));
if (!Number.isSafeInteger(epoch) || epoch < 0) {
  throw new RangeError(`SOURCE_DATE_EPOCH must be seconds since 1970, got ${JSON.stringify(process.env.SOURCE_DATE_EPOCH)}`);
}
process.stdout.write(manPage(new Date(epoch * 1000).toISOString().slice(0, 10)));
