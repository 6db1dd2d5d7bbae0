/**
 * The man page, gpu-bridge-host(1), in roff: generated from what `--help` is generated from (the
 * synopsis of USAGE, the option sections, every command's flag table and help, the environment
 * table), so the page cannot drift from the help. Used only when packaging.
 */
import { commandCatalog, type CommandEntry } from "./catalog.ts";
import { ENVIRONMENT, FLAG_HELP, type FlagHelp, SECTIONS, USAGE } from "./usage.ts";
import { VERSION } from "../util/version.ts";

/** Text made safe for roff: backslashes escaped, hyphens as minus signs, no line read as a request. */
export function roff(text: string): string {
  return text
    .replace(/\\/g, "\\e")
    .replace(/-/g, "\\-")
    .split("\n")
    .map((line) => (/^[.']/.test(line) ? `\\&${line}` : line))
    .join("\n");
}

/** One flag as a tagged paragraph: `--flag ARG`, then its help as one paragraph. */
function flagItem(flag: string, help: FlagHelp | undefined): string {
  if (help === undefined) throw new Error(`No help for --${flag}`);
  const arg = help.arg === undefined ? "" : ` \\fI${roff(help.arg)}\\fR`;
  return `.TP\n.B \\-\\-${roff(flag)}${arg}\n${roff(help.text.split("\n").join(" "))}\n`;
}

function commandSection(e: CommandEntry): string {
  const name = e.path.join(" ");
  const flags = Object.keys(e.flags).filter((f) => f !== "help");
  // serve shares the bridge's table and help (less --list and --version): said, not repeated.
  const body = e.help === FLAG_HELP
    ? `Takes the options above except \\fB\\-\\-list\\fR and \\fB\\-\\-version\\fR.\n`
    : flags.length === 0
    ? ""
    : flags.map((f) => flagItem(f, e.help[f])).join("");
  return `.SS ${roff(name)}\n${roff(e.summary[0]!.toUpperCase() + e.summary.slice(1))}.\n${body}`;
}

/** The page; `date` (YYYY-MM-DD) is its footer's date, given so that builds are reproducible. */
export function manPage(date: string, catalog: readonly CommandEntry[] = commandCatalog()): string {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(date)) throw new RangeError(`manPage needs a date as YYYY-MM-DD, got ${JSON.stringify(date)}`);
  const usage = USAGE.slice(USAGE.indexOf("Usage:\n") + "Usage:\n".length, USAGE.indexOf("\n\n", USAGE.indexOf("Usage:\n")));
  const synopsis = usage.split("\n").map((l) => roff(l.trim())).join("\n.br\n");
  const options = SECTIONS.map(([title, flags]) => `.SS ${roff(title)}\n${flags.map((f) => flagItem(f, FLAG_HELP[f])).join("")}`).join("");
  const env = ENVIRONMENT.map(([name, text]) => `.TP\n.B ${roff(name)}\n${roff(text)}\n`).join("");
  return `.\\" Generated from the --help tables by gpu-bridge-host's packaging; do not edit.
.TH GPU\\-BRIDGE\\-HOST 1 ${date} "gpu\\-bridge\\-host ${roff(VERSION)}" "User Commands"
.SH NAME
gpu\\-bridge\\-host \\- mirror this host's GPUs into a Cohesix VM
.SH SYNOPSIS
.nf
${synopsis.replace(/\n\.br\n/g, "\n")}
.fi
.SH DESCRIPTION
\\fBgpu\\-bridge\\-host\\fR publishes the GPUs of this host into the /gpu namespace of a Cohesix
VM over its TCP console, grants leases on them, runs jobs under those leases, forwards
telemetry, and serves a local HTTP API. \\fBserve\\fR runs it as a daemon; the Debian package
starts that as the \\fBgpu\\-bridge\\-host\\fR systemd unit.
.SH OPTIONS
${options}.SH COMMANDS
${catalog.filter((e) => e.path.length > 0).map(commandSection).join("")}.SH ENVIRONMENT
${env}.SH FILES
.TP
.I /etc/default/gpu\\-bridge\\-host
The unit's settings: the console, its token, extra flags.
.TP
.I /var/lib/gpu\\-bridge\\-host
The unit's state folder: the lease journal, the API token, the telemetry spool.
.SH EXIT STATUS
0 on success, 1 on failure, 2 on a usage error.
.SH SEE ALSO
\\fBsystemctl\\fR(1), \\fBjournalctl\\fR(1); \\fBgpu\\-bridge\\-host \\-\\-help\\fR and
\\fBgpu\\-bridge\\-host\\fR \\fIcommand\\fR \\fB\\-\\-help\\fR.
`;
}
