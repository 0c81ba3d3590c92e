"""``edgedet run``: live detections from a camera, a video file, a URL or a GStreamer pipeline."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "run an engine on a camera (cam0, csi0), video file, RTSP/HTTP URL or GStreamer pipeline"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_engine(p, required=False)
    v.add(p, "server")
    v.add(p, "served-model")
    v.add(p, "video", required=True)
    v.add(p, "score-thresh", default=0.4, detail="shown", deprecated=("--conf",))
    p.add_argument("--save", metavar="FILE", help="write the annotated video to this file (.mp4)")
    v.add(p, "force")
    p.add_argument("--headless", action="store_true", help="never open a window")
    p.add_argument("--max-frames", type=v.positive_int, metavar="N", help="stop after N frames")
    p.add_argument("--classes", nargs="+", help="only these class names (or indices)")


def _class_filter(names: list[str] | None, known: list[str]) -> set[int] | None:
    from edgedet.errors import EdgedetError

    if not names:
        return None
    out = set()
    for n in names:
        if n in known:
            out.add(known.index(n))
        elif n.isdigit():
            out.add(int(n))
        else:
            raise EdgedetError(f"--classes: unknown class {n!r}; the engine knows {', '.join(known[:20])}")
    return out


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from edgedet import log
    from edgedet.errors import EdgedetError
    from edgedet.runtime.pipeline import run_video

    from edgedet.fileio import require_writable

    if args.save:
        if Path(args.save).exists() and not args.force and not Path(args.save).is_dir():
            raise EdgedetError(f"{args.save} exists; pass --force to overwrite it")
        require_writable(args.save)
    from edgedet.cli.predict import _engine_or_server

    if bool(args.engine) == bool(args.server):
        raise EdgedetError("give the engine to run: --engine FILE, or --server URL --served-model NAME")
    det = _engine_or_server(args)
    stats = run_video(det, args.video, save=args.save, headless=args.headless, conf=args.score_thresh,
                      max_frames=args.max_frames, classes=_class_filter(args.classes, det.class_names),
                      overwrite=args.force)
    if stats.frames == 0:
        raise EdgedetError(f"no frames from {args.video}" + (f": {stats.stopped_by}" if stats.stopped_by != "end" else ""))
    log.note(f"run: {stats.frames} frames in {stats.seconds:.1f}s ({stats.fps:.1f} FPS, model {stats.model_ms:.1f} ms/frame), "
             f"{stats.detections} detections; stopped: {stats.stopped_by}" + (f"; saved {args.save}" if args.save else ""))
    return 0 if stats.stopped_by in ("end", "max-frames", "user") else 1
