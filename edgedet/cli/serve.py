"""``edgedet serve``: a Triton Inference Server model repository from edgedet exports (``export``), a local
server on it (``start``, the tritonserver of the nvidia-pytriton wheel, bound to 127.0.0.1), and DeepStream's
nvinfer and deepstream-app configs for an export (``deepstream``)."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = ("serve exports on Triton Inference Server: write a model repository (export) or start a server on one (start); "
        "or write DeepStream nvinfer + deepstream-app configs (deepstream)")


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("action", choices=["export", "start", "deepstream"],
                   help="export: write the repository; start: run tritonserver on it; deepstream: write nvinfer and "
                        "deepstream-app configs for one --input-format float-nchw export")
    v.add(p, "engine", required=False, nargs="+", detail="export: the artifacts to serve (with their sidecars); "
                                                         "deepstream: one .onnx or .plan")
    v.add(p, "out", detail="export: the model repository to write; deepstream: the folder for the configs")
    p.add_argument("--parser-lib", metavar="SO", help="deepstream: the built libnvdsinfer_edgedet.so (default: "
                                                      "OUT/libnvdsinfer_edgedet.so, absolute)")
    v.add(p, "video", detail="deepstream: the deepstream-app source (a file or URI)")
    p.add_argument("--repo", metavar="DIR", help="start: the model repository to serve")
    p.add_argument("--kind", choices=["gpu", "cpu"], default="gpu",
                   help="export: where the native models' instances run (KIND_GPU or KIND_CPU; the _cpu models and the "
                        "_e2e models of ONNX exports always run on the CPU) (default gpu)")
    p.add_argument("--instances", type=v.positive_int, default=1, metavar="N", help="export: instances per model (default 1)")
    p.add_argument("--queue-delay-us", type=v.non_negative_int, default=200, metavar="US",
                   help="export: dynamic batching's longest wait for a fuller batch, in microseconds (default 200, "
                        "measured: a lone client stays within 10%% of no batching)")
    p.add_argument("--no-batching", action="store_true", help="export: no dynamic batching, even for dynamic-batch exports")
    p.add_argument("--http-port", type=v.port, default=8000, metavar="PORT", help="start: HTTP port (default 8000)")
    p.add_argument("--grpc-port", type=v.port, default=8001, metavar="PORT", help="start: gRPC port (default 8001)")
    p.add_argument("--host", default="127.0.0.1", metavar="ADDR", help="start: the address to bind (default 127.0.0.1)")
    v.add(p, "force")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgedet import log
    from edgedet.errors import EdgedetError

    if args.action == "export":
        from edgedet.runtime.triton.repository import write_repository

        if not args.engine or not args.out:
            raise EdgedetError("serve export needs --engine FILE [FILE ...] and -o REPO")
        models = write_repository([Path(e) for e in args.engine], Path(args.out), kind=args.kind, instances=args.instances,
                                  queue_delay_us=args.queue_delay_us, batching=not args.no_batching, force=args.force)
        log.note(f"serve export: {len(models)} models in {args.out} ({', '.join(models)}); "
                 f"start it with `edgedet serve start --repo {args.out}`")
        return 0
    if args.action == "deepstream":
        return _deepstream(args)
    if not args.repo:
        raise EdgedetError("serve start needs --repo DIR (a repository written by `edgedet serve export`)")
    import signal
    import time

    from edgedet.runtime.triton.server import TritonServer

    def _stop(signum, frame):  # SIGTERM (systemd, Docker, Kubernetes) stops it as Ctrl-C does, server included
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _stop)

    server = TritonServer(args.repo, host=args.host, http_port=args.http_port, grpc_port=args.grpc_port,
                          log=Path(args.repo).with_name(f"{Path(args.repo).name}.tritonserver.log"))
    with server:
        log.note(f"tritonserver ready: {server.http_url} (HTTP), {server.grpc_url} (gRPC), serving {', '.join(server.models)} "
                 f"(native TensorRT/ONNX Runtime models need NVIDIA's Triton container); log {server.log_path}; Ctrl-C stops it")
        try:
            while server.process.poll() is None:
                time.sleep(0.5)
        except KeyboardInterrupt:
            return 0
        raise EdgedetError(f"tritonserver stopped by itself (exit {server.process.returncode}): {server.last_error()}")


def _deepstream(args: argparse.Namespace) -> int:
    from edgedet import log
    from edgedet.errors import EdgedetError
    from edgedet.runtime.deepstream import write_deepstream

    if not args.engine or len(args.engine) != 1 or not args.out:
        raise EdgedetError("serve deepstream needs one --engine FILE (.onnx or .plan) and -o DIR")
    files = write_deepstream(args.engine[0], args.out, parser_lib=args.parser_lib, video=args.video, force=args.force)
    log.note(f"serve deepstream: {files.config} (nvinfer), {files.labels}, {files.app}; run "
             f"`deepstream-app -c {files.app}`")
    return 0
