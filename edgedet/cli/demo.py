"""``edgedet demo``: the whole job offline on a fresh machine — synthesize, train the tiny model, evaluate, export."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "offline end-to-end demo: synthetic data → train the tiny model → COCO eval → FP32/FP16/INT8 export → verify table"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add(p, "out", default="edgedet-demo", detail="the working run folder")
    v.add(p, "count", default=400, detail="synthetic images", deprecated=("--images",))
    v.add(p, "epochs", detail="default: the tiny preset's")
    v.add(p, "device")


def run(args: argparse.Namespace) -> int:
    import time
    from pathlib import Path

    from edgedet import log
    from edgedet.data import load_dataset
    from edgedet.data.synth import make_synthetic_dataset
    from edgedet.evaluate import evaluate_predictor, print_eval
    from edgedet.fileio import next_run_dir
    from edgedet.reference import load_reference
    from edgedet.train.config import make_config
    from edgedet.train.engine import train

    t0 = time.perf_counter()
    root = next_run_dir(args.out)
    log.note(f"demo: [1/5] synthesizing {args.count} images into {root}")
    synth = make_synthetic_dataset(root / "data", images=args.count, video=True, progress=True)

    log.note("demo: [2/5] training ssdlite_tiny from scratch")
    cfg = make_config(model="ssdlite_tiny", data=str(synth.train_json), preset="tiny", images=str(synth.images_dir),
                      val_data=str(synth.val_json), epochs=args.epochs, device=args.device,
                      out=str(root / "train"), eval_every=1000)  # eval only after the last epoch
    result = train(cfg)

    log.note("demo: [3/5] evaluating the best checkpoint on the val split")
    predictor = load_reference(None, str(result.best), device=args.device)
    val = load_dataset(synth.val_json, synth.images_dir)
    metrics, _ = evaluate_predictor(predictor, val, predictor.classes)
    print_eval(metrics, "ssdlite_tiny on synthetic val")

    log.note("demo: [4/5] exporting FP32, FP16 and INT8 (calibrated on the train split) ONNX")
    from edgedet.export.onnx_export import ExportOptions, export_model, summarize
    from edgedet.verify import print_report, verify

    exported = export_model(ExportOptions(model=None, weights=str(result.best), fp16=True, int8=True,
                                          calib_images=str(synth.train_json), calib_count=128,
                                          out_dir=str(root / "export"), verify=len(val),
                                          verify_source=str(synth.images_dir / "val_*.jpg")))
    summarize(exported)
    log.note("demo: [5/5] verifying the three engines against PyTorch on the val split")
    report = verify([str(p) for p in exported.artifacts.values()], None, str(result.best), val, device=args.device)
    print_report(report)
    print(f"checkpoint: {result.best}\nonnx:       {', '.join(str(p) for p in exported.artifacts.values())}\n"
          f"video:      {synth.video}\ncurves:     {Path(result.out_dir) / 'curves.png'}")
    log.note(f"demo: done in {time.perf_counter() - t0:.0f}s; mAP@0.5 {metrics.stats['AP50']:.3f}; "
             f"verify {'PASS' if report.passed else 'FAIL'}")
    return 0 if report.passed else 1
