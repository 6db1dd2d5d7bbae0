"""Maps a sealed shard of gpu-bridge-host read-only, in the process that serves the model.

Standard library and ctypes on libcuda.so.1 only. The bridge's lease socket hands over a file
descriptor for the shard's memory (SCM_RIGHTS); this module imports it with the CUDA driver's
virtual memory management calls and maps it with CU_MEM_ACCESS_FLAGS_PROT_READ, so this process
can read the sealed bytes and cannot change them. Before each use, ask `check()`: the bridge
answers yes only after a fresh enough verification of the bytes in VRAM.

    from gpu_bridge_share import connect
    with connect() as bridge:                 # GPU_BRIDGE_SHARE_SOCKET / _TOKEN, or the CDI mount
        shard = bridge.open("shard-...")      # .ptr, .size, .digest, __cuda_array_interface__
        if bridge.check(shard.shard_id)["may_execute"]:
            weights = shard.as_torch()        # when PyTorch is installed (or .as_cupy())
        shard.close()

Run as a script for a quick look: python3 gpu_bridge_share.py list | open SHARD_ID | check SHARD_ID
"""
import ctypes
import hashlib
import json
import os
import socket
import sys

SOCKET_IN_CONTAINER = "/run/gpu-bridge/share.sock"
TOKEN_IN_CONTAINER = "/run/gpu-bridge/share.token"
HANDLE_POSIX_FD = 1
PROT_READ = 1
LOCATION_DEVICE = 1


class ShareError(Exception):
    """A refusal from the bridge (code, message, retryable) or a failed driver call."""

    def __init__(self, code, message, retryable=False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.retryable = retryable


class CudaError(ShareError):
    def __init__(self, call, rc):
        super().__init__("cuda", f"{call} returned CUresult {rc}")
        self.call = call
        self.rc = rc


class _Location(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("id", ctypes.c_int)]


class _Prop(ctypes.Structure):
    _fields_ = [("type", ctypes.c_int), ("requestedHandleTypes", ctypes.c_int), ("location", _Location),
                ("win32HandleMetaData", ctypes.c_void_p), ("allocFlags", ctypes.c_ubyte * 8)]


class _AccessDesc(ctypes.Structure):
    _fields_ = [("location", _Location), ("flags", ctypes.c_int)]


class Driver:
    """The few driver calls an importer needs, from GPU_BRIDGE_CUDA_LIB or libcuda.so.1."""

    def __init__(self, path=None):
        self.lib = ctypes.CDLL(path or os.environ.get("GPU_BRIDGE_CUDA_LIB") or "libcuda.so.1")
        u64, sz = ctypes.c_ulonglong, ctypes.c_size_t
        sig = {
            "cuInit": [ctypes.c_uint],
            "cuDeviceGetCount": [ctypes.POINTER(ctypes.c_int)],
            "cuDeviceGet": [ctypes.POINTER(ctypes.c_int), ctypes.c_int],
            "cuDevicePrimaryCtxRetain": [ctypes.POINTER(ctypes.c_void_p), ctypes.c_int],
            "cuCtxSetCurrent": [ctypes.c_void_p],
            "cuMemImportFromShareableHandle": [ctypes.POINTER(u64), ctypes.c_void_p, ctypes.c_int],
            "cuMemAddressReserve": [ctypes.POINTER(u64), sz, sz, u64, u64],
            "cuMemAddressFree": [u64, sz],
            "cuMemMap": [u64, sz, sz, u64, u64],
            "cuMemUnmap": [u64, sz],
            "cuMemRelease": [u64],
            "cuMemSetAccess": [u64, sz, ctypes.POINTER(_AccessDesc), sz],
            "cuMemcpyDtoH_v2": [ctypes.c_void_p, u64, sz],
            "cuMemcpyHtoD_v2": [u64, ctypes.c_void_p, sz],
        }
        for name, args in sig.items():
            fn = getattr(self.lib, name)
            fn.argtypes = args
            fn.restype = ctypes.c_int
        self.call("cuInit", 0)

    def call(self, name, *args):
        rc = getattr(self.lib, name)(*args)
        if rc != 0:
            raise CudaError(name, rc)

    def rc(self, name, *args):
        return getattr(self.lib, name)(*args)

    def use(self, ordinal):
        dev, ctx = ctypes.c_int(), ctypes.c_void_p()
        self.call("cuDeviceGet", ctypes.byref(dev), ordinal)
        self.call("cuDevicePrimaryCtxRetain", ctypes.byref(ctx), dev)
        self.call("cuCtxSetCurrent", ctx)
        return dev.value


class MappedShard:
    """A shard mapped read-only in this process: `ptr` (a device pointer), `size`, `digest`, `info`."""

    def __init__(self, driver, ptr, handle, device, info):
        self._driver, self._handle, self.device, self.info = driver, handle, device, info
        self.ptr = ptr
        self.shard_id = info["shard_id"]
        self.size = info["vram_bytes"]
        self.mapped_bytes = info["mapped_bytes"]
        self.digest = info["digest"]

    @property
    def __cuda_array_interface__(self):
        # version 3; data's second item True: read-only
        return {"shape": (self.size,), "typestr": "|u1", "data": (self.ptr, True), "version": 3, "strides": None}

    def read(self, offset=0, length=None):
        """Copies bytes of the shard to the host (cuMemcpyDtoH_v2)."""
        length = self.size - offset if length is None else length
        out = ctypes.create_string_buffer(length)
        self._driver.call("cuMemcpyDtoH_v2", out, self.ptr + offset, length)
        return out.raw

    def sha256(self):
        """The SHA-256 of the mapped bytes: what the bridge sealed, unless they changed."""
        return hashlib.sha256(self.read()).hexdigest()

    def try_write(self, offset, data):
        """Tries to write through the mapping; returns the CUresult (non-zero: refused, as it must be)."""
        buf = ctypes.create_string_buffer(data, len(data))
        return self._driver.rc("cuMemcpyHtoD_v2", self.ptr + offset, buf, len(data))

    def as_torch(self):
        import torch  # noqa: only when installed
        return torch.as_tensor(self, device=f"cuda:{self.device}")

    def as_cupy(self):
        import cupy  # noqa: only when installed
        return cupy.asarray(self)

    def close(self):
        if self.ptr:
            self._driver.rc("cuMemUnmap", self.ptr, self.mapped_bytes)
            self._driver.rc("cuMemAddressFree", self.ptr, self.mapped_bytes)
            self._driver.rc("cuMemRelease", self._handle)
            self.ptr = 0


class Client:
    """One connection to a lease's share socket."""

    def __init__(self, path=None, token=None, driver=None):
        self.path = path or os.environ.get("GPU_BRIDGE_SHARE_SOCKET") or SOCKET_IN_CONTAINER
        self.token = token or os.environ.get("GPU_BRIDGE_SHARE_TOKEN") or _read_token()
        self._driver = driver
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(self.path)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        self.sock.close()

    def request(self, op, **fields):
        """Sends one request; returns (reply, fds received)."""
        self.sock.sendall((json.dumps({"op": op, "token": self.token, **fields}) + "\n").encode())
        data, fds = b"", []
        while not data.endswith(b"\n"):
            chunk, got, _flags, _addr = socket.recv_fds(self.sock, 65536, 1)
            if not chunk:
                raise ShareError("closed", "the bridge closed the connection")
            data += chunk
            fds += got
        reply = json.loads(data)
        if not reply.get("ok", False) and op != "check":
            for fd in fds:
                os.close(fd)
            raise ShareError(reply.get("code", "error"), reply.get("message", ""), reply.get("retryable", False))
        return reply, fds

    def list(self):
        return self.request("list")[0]["shards"]

    def check(self, shard_id):
        """May this process execute from the shard now? The bridge's answer, with what it checked and when."""
        return self.request("check", shard_id=shard_id)[0]

    def open(self, shard_id, device=None):
        """Receives the shard's descriptor and maps it read-only; returns a MappedShard."""
        info, fds = self.request("open", shard_id=shard_id)
        if len(fds) != 1:
            raise ShareError("protocol", f"expected one file descriptor with the answer, got {len(fds)}")
        self._driver = self._driver or Driver()
        try:
            return map_fd(self._driver, fds[0], info, device)
        finally:
            os.close(fds[0])


def map_fd(driver, fd, info, device=None):
    """Imports the descriptor `fd` (the caller keeps and closes it) and maps it read-only.

    `info` is the bridge's answer: vram_bytes, mapped_bytes (the allocation's whole size, which
    the mapping must cover), gpu_device, digest, shard_id.
    """
    count = ctypes.c_int()
    driver.call("cuDeviceGetCount", ctypes.byref(count))
    if device is None:
        # in a container that sees only the lease's GPU, it is device 0
        device = info["gpu_device"] if info["gpu_device"] < count.value else 0
    dev = driver.use(device)
    handle = ctypes.c_ulonglong()
    driver.call("cuMemImportFromShareableHandle", ctypes.byref(handle), ctypes.c_void_p(fd), HANDLE_POSIX_FD)
    size = info["mapped_bytes"]
    ptr = ctypes.c_ulonglong()
    try:
        driver.call("cuMemAddressReserve", ctypes.byref(ptr), size, 0, 0, 0)
        driver.call("cuMemMap", ptr.value, size, 0, handle.value, 0)
        desc = _AccessDesc(_Location(LOCATION_DEVICE, dev), PROT_READ)
        driver.call("cuMemSetAccess", ptr.value, size, ctypes.byref(desc), 1)
    except CudaError:
        if ptr.value:
            driver.rc("cuMemUnmap", ptr.value, size)
            driver.rc("cuMemAddressFree", ptr.value, size)
        driver.rc("cuMemRelease", handle.value)
        raise
    return MappedShard(driver, ptr.value, handle.value, dev, info)


def _read_token():
    path = os.environ.get("GPU_BRIDGE_SHARE_TOKEN_FILE") or TOKEN_IN_CONTAINER
    with open(path, encoding="ascii") as f:
        return f.read().strip()


def connect(path=None, token=None):
    """A client of the lease's share socket (path and token from the environment or the CDI mount)."""
    return Client(path, token)


def main(argv):
    if len(argv) < 2 or argv[1] not in ("list", "open", "check"):
        print("usage: gpu_bridge_share.py list | open SHARD_ID | check SHARD_ID", file=sys.stderr)
        return 2
    with connect() as bridge:
        if argv[1] == "list":
            print(json.dumps(bridge.list()))
        elif argv[1] == "check":
            print(json.dumps(bridge.check(argv[2])))
        else:
            shard = bridge.open(argv[2])
            try:
                print(json.dumps({"shard_id": shard.shard_id, "size": shard.size, "digest": shard.digest,
                                  "sha256": shard.sha256(), "write_rc": shard.try_write(0, b"\x00")}))
            finally:
                shard.close()
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv))
    except ShareError as e:
        print(json.dumps({"ok": False, "code": e.code, "message": str(e), "retryable": e.retryable}))
        sys.exit(1)
