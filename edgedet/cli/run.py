"""``edgedet run``: live detections from a camera, a video file, a URL or a GStreamer pipeline."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "run an engine on cameras (cam0, csi0), video files, RTSP/HTTP URLs or GStreamer pipelines, batched, tracked"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add_engine(p, required=False)
    v.add(p, "server")
    v.add(p, "served-model")
    v.add(p, "video", required=True, action="append",
          detail="repeat it for several streams, batched through one engine")
    v.add(p, "score-thresh", default=0.4, detail="shown", deprecated=("--conf",))
    p.add_argument("--track", action="store_true",
                   help="give each detection a track id that stays with its object (ByteTrack; ids per stream)")
    p.add_argument("--save", metavar="DIR|FILE.mp4",
                   help="a folder: <stream>.mp4 (annotated) and <stream>.jsonl (detections per frame) for each "
                        "stream; a .mp4 path: that one stream's annotated video")
    p.add_argument("--jsonl", metavar="FILE",
                   help="every stream's detections, one JSON line per frame, in one file (- for stdout)")
    v.add(p, "force")
    p.add_argument("--headless", action="store_true", help="never open a window")
    p.add_argument("--max-frames", type=v.positive_int, metavar="N", help="stop each stream after N frames")
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
    from edgedet import log
    from edgedet.errors import EdgedetError
    from edgedet.fileio import require_writable
    from edgedet.runtime.pipeline import output_paths, run_video

    output_paths(args.video, args.save, overwrite=args.force, jsonl=args.jsonl)  # every refusal before the engine loads
    if args.save:
        require_writable(args.save, folder=not args.save.lower().endswith(".mp4"))
    if args.jsonl and args.jsonl != "-":
        require_writable(args.jsonl)
    from edgedet.cli.predict import _engine_or_server

    if bool(args.engine) == bool(args.server):
        raise EdgedetError("give the engine to run: --engine FILE, or --server URL --served-model NAME")
    det = _engine_or_server(args)
    stats = run_video(det, args.video, save=args.save, jsonl=args.jsonl, headless=args.headless,
                      conf=args.score_thresh, max_frames=args.max_frames, track=args.track,
                      classes=_class_filter(args.classes, det.class_names), overwrite=args.force)
    if stats.frames == 0:
        raise EdgedetError(f"no frames from {', '.join(args.video)}" + (f": {stats.stopped_by}" if stats.stopped_by != "end" else ""))
    if len(stats.streams) > 1:
        for s in stats.streams:
            log.note(f"run: stream {s.name}: {s.frames} frames ({s.fps:.1f} FPS, latency p50 {s.latency(50):.0f} ms "
                     f"p99 {s.latency(99):.0f} ms), {s.detections} detections; stopped: {s.stopped_by}")
    log.note(f"run: {stats.frames} frames in {stats.seconds:.1f}s ({stats.fps:.1f} FPS, model {stats.model_ms:.1f} ms/frame), "
             f"{stats.detections} detections; stopped: {stats.stopped_by}" + (f"; saved {args.save}" if args.save else ""))
    ok = ("end", "max-frames", "user", "stopped")
    return 0 if all(s.stopped_by in ok for s in stats.streams) else 1
