#!/usr/bin/python3
"""A kubelet stand-in in Python over Debian's python3-grpcio (gRPC's C core, not JavaScript).

It serves Registration on DIR/device-plugins/kubelet.sock and PodResourcesLister on
DIR/pod-resources/kubelet.sock, and, once a plugin registers, dials the plugin's endpoint and
follows ListAndWatch. The messages are encoded and decoded here by hand from the field numbers of
the vendored .proto files (Debian's grpcio has no code generator that reads proto3 of today),
so the bytes on the wire are checked against the schema independently of protobufjs.

Commands arrive as JSON lines on stdin, events leave as JSON lines on stdout:
  {"cmd": "allocate", "requests": [["id", ...], ...]}  -> {"event": "allocated", ...} or {"event": "error", "code": "NOT_FOUND", ...}
  {"cmd": "pods", "containers": [["id", ...], ...]}    -> PodResources lists them from now on
  {"cmd": "restart"}                                   -> what a kubelet restart does to the folder
  {"cmd": "quit"}
"""
import json
import os
import sys
import threading
from concurrent import futures

import grpc

DIR = sys.argv[1]
RESOURCE = sys.argv[2]
PLUGINS = os.path.join(DIR, "device-plugins")
PODS = os.path.join(DIR, "pod-resources")
out_lock = threading.Lock()


def emit(**event):
    with out_lock:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


# --- protobuf wire format: varints, tags, length-delimited fields -------------------------
def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def field_bytes(num, data):
    return varint(num << 3 | 2) + varint(len(data)) + data


def field_str(num, s):
    return field_bytes(num, s.encode())


def parse(data):
    """Fields of one message: {number: [value, ...]}; varints as int, length-delimited as bytes."""
    fields, i = {}, 0
    while i < len(data):
        key, i = read_varint(data, i)
        num, wire = key >> 3, key & 7
        if wire == 0:
            val, i = read_varint(data, i)
        elif wire == 2:
            n, i = read_varint(data, i)
            val, i = data[i:i + n], i + n
        else:
            raise ValueError("unexpected wire type %d" % wire)
        fields.setdefault(num, []).append(val)
    return fields


def read_varint(data, i):
    n, shift = 0, 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def text(fields, num):
    return fields.get(num, [b""])[0].decode()


def decode_device(raw):
    f = parse(raw)
    topo = [parse(n) for n in parse(f[3][0]).get(1, [])] if 3 in f else None
    return {"ID": text(f, 1), "health": text(f, 2), "numa": [n.get(1, [0])[0] for n in topo] if topo is not None else None}


def decode_map(entries):
    return {text(parse(e), 1): text(parse(e), 2) for e in entries}


def decode_container_response(raw):
    f = parse(raw)
    return {
        "envs": decode_map(f.get(1, [])),
        "mounts": len(f.get(2, [])),
        "devices": len(f.get(3, [])),
        "annotations": decode_map(f.get(4, [])),
        "cdi_devices": [text(parse(c), 1) for c in f.get(5, [])],
    }


# --- the kubelet's servers ----------------------------------------------------------------
state = {"pods": [], "servers": [], "channel": None}


def register(request, context):
    f = parse(request)
    opts = parse(f[4][0]) if 4 in f else {}
    reg = {
        "version": text(f, 1),
        "endpoint": text(f, 2),
        "resource_name": text(f, 3),
        "get_preferred_allocation_available": bool(opts.get(2, [0])[0]),
    }
    if reg["version"] != "v1beta1":
        context.abort(grpc.StatusCode.UNKNOWN, "Unsupported version " + reg["version"])
    emit(event="registered", **reg)
    threading.Thread(target=watch, args=(reg["endpoint"],), daemon=True).start()
    return b""


def watch(endpoint):
    channel = grpc.insecure_channel("unix://" + os.path.join(PLUGINS, endpoint))
    state["channel"] = channel
    stream = channel.unary_stream("/v1beta1.DevicePlugin/ListAndWatch")
    try:
        for msg in stream(b""):
            emit(event="devices", devices=[decode_device(d) for d in parse(msg).get(1, [])])
    except grpc.RpcError as e:
        emit(event="watch-ended", code=e.code().name)


def list_pods(request, context):
    containers = b"".join(
        field_bytes(3, field_str(1, "c%d" % i) + field_bytes(2, field_str(1, RESOURCE) + b"".join(field_str(2, d) for d in ids)))
        for i, ids in enumerate(state["pods"])
    )
    pod = field_str(1, "pod") + field_str(2, "default") + containers
    return field_bytes(1, pod) if state["pods"] else b""


def serve():
    os.makedirs(PLUGINS, exist_ok=True)
    os.makedirs(PODS, exist_ok=True)
    reg = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    reg.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "v1beta1.Registration", {"Register": grpc.unary_unary_rpc_method_handler(register)}),))
    reg.add_insecure_port("unix://" + os.path.join(PLUGINS, "kubelet.sock"))
    pods = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    pods.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "v1.PodResourcesLister", {"List": grpc.unary_unary_rpc_method_handler(list_pods)}),))
    pods.add_insecure_port("unix://" + os.path.join(PODS, "kubelet.sock"))
    reg.start()
    pods.start()
    state["servers"] = [reg, pods]


def allocate(requests):
    body = b"".join(field_bytes(1, b"".join(field_str(1, d) for d in ids)) for ids in requests)
    call = state["channel"].unary_unary("/v1beta1.DevicePlugin/Allocate")
    try:
        reply, rpc = call.with_call(body, timeout=5)
        emit(event="allocated", status=rpc.code().name,
             responses=[decode_container_response(c) for c in parse(reply).get(1, [])])
    except grpc.RpcError as e:
        emit(event="error", code=e.code().name, details=e.details())


serve()
emit(event="ready", grpc=grpc.__version__)
for line in sys.stdin:
    cmd = json.loads(line)
    if cmd["cmd"] == "allocate":
        allocate(cmd["requests"])
    elif cmd["cmd"] == "pods":
        state["pods"] = cmd["containers"]
        emit(event="pods-set")
    elif cmd["cmd"] == "restart":
        for s in state["servers"]:
            s.stop(None).wait()
        for name in os.listdir(PLUGINS):
            os.remove(os.path.join(PLUGINS, name))
        serve()
        emit(event="restarted")
    elif cmd["cmd"] == "quit":
        break
