/** The `--help` text. */
import { VERSION } from "../version.ts";

export const USAGE = `gpu-bridge-host ${VERSION}: mirrors this host's GPUs into a Cohesix VM under /gpu.

Usage:
  gpu-bridge-host [--mock] [--registry DIR] --list
  gpu-bridge-host [--mock] [--registry DIR] --publish [--interval-ms MS] [console options]
  gpu-bridge-host serve [--mock] [--registry DIR] [--publish [--interval-ms MS]] [console options]
  gpu-bridge-host stats [--json] [--mock | --backend NAME] [--sys-root DIR]
  gpu-bridge-host telemetry push FILE | telemetry export --out FILE [--since T]
  gpu-bridge-host models import DIR --id ID --registry DIR [--parent ID] [--job-id J] [--approval S]
  gpu-bridge-host mock-console [--port PORT] ...   a local stand-in for the Cohesix console
  gpu-bridge-host console ls|cat|echo PATH ...     one request to a console, as cohsh sends it

Inventory and models:
  --mock                 use the deterministic mock inventory instead of real GPUs
  --backend NAME         auto (default), nvml, cuda, jetson or mock; auto tries NVML, then
                         CUDA (the Jetson backend when the GPU is integrated)
  --sys-root DIR         read /sys, /proc and /etc under DIR (default /)
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
  --window N             console lines in flight before their acks, 1 (stop-and-wait) to 7
                         (default 4; the console queues 8 lines and drops the oldest)
  --readback-ms MS       read the VM's node files back (CAT) every MS while idle, so lines the
                         VM's clients write are seen and kept; 0: only before full snapshots
                         (default 2000)

Leases and jobs (with --interval-ms or serve):
  --state-dir DIR        where leases are journalled across restarts
                         (default $XDG_STATE_HOME/gpu-bridge-host)
  --bundle-dir DIR       staged job inputs and outputs; without it jobs carry payload_b64
  --runner KIND          auto (default: cuda on real GPUs, cpu on the mock), cpu or cuda
  --max-streams-per-gpu N  streams that may be leased on one GPU at once (default 16)

Telemetry (with --interval-ms or serve):
  --device-id ID         the device the Queen files this host's telemetry under (default: host name)
  --spool-max-mb N       local spool cap; past it the oldest segment is dropped (default 256)
  --queen-segment-kb N   start a new Queen segment past this many bytes (default 64)

Local API (with --interval-ms or serve):
  --listen HOST:PORT     where the HTTP API listens (default 127.0.0.1:31338)
  --allow-remote         allow a non-loopback --listen (needs an explicit token)
  --api-token TOKEN      bearer token for mutating routes; else $GPU_BRIDGE_API_TOKEN, else
                         one generated into <state-dir>/api-token (mode 0600)
  --no-api               do not serve the API

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
  --ack-delay-ms MS      delay every ack, to imitate a slow server (default 0)
  --rtt-ms MS            round trip of the link, half of it each way, frames travelling side
                         by side as on a long wire (default 0)
  --jitter-ms MS         extra random delay per chunk, 0..MS, order kept (default 0)
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

export const STATS_USAGE = `gpu-bridge-host stats: print live GPU statistics.

Usage:
  gpu-bridge-host stats [--json] [--mock | --backend NAME] [--sys-root DIR]

Shows what the info payload leaves out: UUID, PCI bus id, utilisation, memory, temperature,
power and energy, clocks, compute capability, MIG mode and processes (on Jetson: load, GPU
frequency, the GPU thermal zone, shared memory). A field the hardware does not report is null
in --json and "-" in the table.

Library overrides: GPU_BRIDGE_NVML_LIB and GPU_BRIDGE_CUDA_LIB name the libraries to load first.
`;

export const TELEMETRY_USAGE = `gpu-bridge-host telemetry: feed and read the LoRA loop's telemetry.

Usage:
  gpu-bridge-host telemetry push FILE [--url URL] [--api-token TOKEN] [--state-dir DIR]
      Validates gpu-telemetry/v1 records (NDJSON, one per line; - reads stdin) and posts them
      to the running bridge (default http://127.0.0.1:31338), which spools and forwards them.
      The token: --api-token, else $GPU_BRIDGE_API_TOKEN, else <state-dir>/api-token.
  gpu-bridge-host telemetry export --out FILE [--since T] [--state-dir DIR]
      Writes the spooled records as one CBOR bundle (gpu-telemetry-bundle/v1), optionally only
      those whose window ends at or after T (epoch ms or RFC 3339). Safe while the bridge runs.
`;

export const MODELS_USAGE = `gpu-bridge-host models import: stage a trained adapter in the registry.

Usage:
  gpu-bridge-host models import DIR --id ID --registry REG [--parent ID] [--job-id J]
      [--approval pending|approved|rejected]

DIR holds adapter.safetensors and lora.json (and optionally metrics.json). The model appears as
REG/available/ID/ with a manifest.toml recording the parent model (--parent, or base_model in
lora.json), the training job, the telemetry window, the approval status (default pending) and
each file's SHA-256 and size. An id or manifest the VM would refuse is refused here. A running
bridge publishes the new model within a second; make it active with PUT /v1/models/active.
`;
