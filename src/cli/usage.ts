/** The `--help` text. */
import { VERSION } from "../version.ts";

export const USAGE = `gpu-bridge-host ${VERSION}: mirrors this host's GPUs into a Cohesix VM under /gpu.

Usage:
  gpu-bridge-host [--mock] [--registry DIR] --list
  gpu-bridge-host [--mock] [--registry DIR] --publish [--interval-ms MS] [console options]
  gpu-bridge-host serve [--mock] [--registry DIR] [--publish [--interval-ms MS]] [console options]
  gpu-bridge-host mock-console [--port PORT] ...   a local stand-in for the Cohesix console

Inventory and models:
  --mock                 use the deterministic mock inventory instead of real GPUs
  --registry DIR         model registry root (DIR/available/<id>/manifest.toml, DIR/active);
                         default: the built-in catalog

Actions (--list and --publish may be combined; the list is printed first):
  --list                 print the /gpu namespace as JSON on stdout
  --publish              publish the snapshot to /gpu/bridge/ctl over the TCP console
  --interval-ms MS       with --publish: keep running as a daemon; every MS, re-read the
                         inventory and publish if anything changed (an unchanged snapshot
                         is re-sent once a minute). Changes to the registry publish at once.

Console:
  --tcp-host HOST        console host (default 127.0.0.1)
  --tcp-port PORT        console port (default 31337)
  --auth-token TOKEN     console token; if absent or blank: $COH_AUTH_TOKEN, then
                         $COHSH_AUTH_TOKEN, then "changeme"
  --ticket TICKET        ticket sent with ATTACH (default empty)
  --ack-timeout-ms MS    how long to wait for each console ack (default 5000)

Other:
  --log-level LEVEL      debug, info, warn or error (default info); logs go to stderr
  --help                 print this help
  --version              print the version

Exit status: 0 on success, 1 on failure, 2 on a usage error.
`;

export const MOCK_CONSOLE_USAGE = `gpu-bridge-host mock-console: a local stand-in for the Cohesix TCP console.

It speaks the console protocol (framing, AUTH, ATTACH, ECHO, PING, CAT, LS), holds the /gpu tree
that published snapshots produce, and validates /gpu/bridge/ctl exactly as the VM does.

Usage:
  gpu-bridge-host mock-console [options]

Options:
  --host HOST            address to listen on (default 127.0.0.1)
  --port PORT            port to listen on, 0 for any free port (default 31337)
  --auth-token TOKEN     token AUTH must present; same fallbacks as the bridge (default "changeme")
  --ack-delay-ms MS      delay every ack, to imitate a slow link (default 0)
  --noise                interleave log-mirror lines and stale acks with every ack
  --log-level LEVEL      debug, info, warn or error (default info)
`;

export const SERVE_USAGE = `gpu-bridge-host serve: run the bridge as a daemon until SIGINT or SIGTERM.

Usage:
  gpu-bridge-host serve [--mock] [--registry DIR] [--publish [--interval-ms MS]] [console options]

Takes the bridge's flags (see gpu-bridge-host --help) except --list. With --publish it keeps the
VM's /gpu current: it reconnects with backoff, republishes on every connection and right after
a change, and pings the console when idle. --interval-ms defaults to 30000 here.
`;
