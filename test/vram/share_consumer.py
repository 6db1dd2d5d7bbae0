"""The inference process in test/vram/share.test.ts: maps a shard through clients/python/ and
reports what it could do with it, as one JSON line. argv: SHARD_ID [WAIT] (WAIT: keep the
mapping and read again after a line on stdin, to see a change the bridge made)."""
import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "clients", "python"))
import ctypes  # noqa: E402
from gpu_bridge_share import ShareError, connect  # noqa: E402


def store_through_pointer(ptr):
    """A CPU store through the mapping, in a child: the signal that ended it (0: the store landed)."""
    pid = os.fork()
    if pid == 0:
        ctypes.memset(ptr, 0x5A, 1)
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    return os.WTERMSIG(status) if os.WIFSIGNALED(status) else 0


def main():
    out = {}
    try:
        with connect() as bridge:
            out["check"] = bridge.check(sys.argv[1])
            shard = bridge.open(sys.argv[1])
            out.update(size=shard.size, digest=shard.digest, sha256=shard.sha256(), access=shard.info["access"],
                       write_rc=shard.try_write(0, b"\x00"), store_signal=store_through_pointer(shard.ptr),
                       cai=shard.__cuda_array_interface__["data"][1], sha256_after=shard.sha256())
            if len(sys.argv) > 2:
                print(json.dumps(out), flush=True)
                sys.stdin.readline()
                out = {"sha256_later": shard.sha256()}
            shard.close()
    except ShareError as e:
        out.update(error=e.code, message=str(e), retryable=e.retryable)
    print(json.dumps(out), flush=True)


main()
