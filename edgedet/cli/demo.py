"""``edgedet demo``: the whole job offline on a fresh machine — synthesize, train the tiny model, evaluate, export."""

from __future__ import annotations

import argparse

HELP = "offline end-to-end demo: synthetic data → train the tiny model (~1 min on 2 cores) → COCO eval → ONNX export with parity check"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="edgedet-demo", help="working folder (default ./edgedet-demo)")
    p.add_argument("--images", type=int, default=400, help="synthetic images (default 400)")
    p.add_argument("--epochs", type=int, help="training epochs (default: the tiny preset's)")
    p.add_argument("--device", help="cpu or cuda (default: CUDA when available)")


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
    log.note(f"demo: [1/4] synthesizing {args.images} images into {root}")
    synth = make_synthetic_dataset(root / "data", images=args.images, video=True, progress=True)

    log.note("demo: [2/4] training ssdlite_tiny from scratch")
    cfg = make_config(model="ssdlite_tiny", data=str(synth.train_json), preset="tiny", images=str(synth.images_dir),
                      val_data=str(synth.val_json), epochs=args.epochs, device=args.device,
                      out=str(root / "train"), eval_every=1000)  # eval only after the last epoch
    result = train(cfg)

    log.note("demo: [3/4] evaluating the best checkpoint on the val split")
    predictor = load_reference(None, str(result.best), device=args.device)
    val = load_dataset(synth.val_json, synth.images_dir)
    metrics, _ = evaluate_predictor(predictor, val, predictor.classes)
    print_eval(metrics, f"ssdlite_tiny on synthetic val ({len(val)} images)")

    log.note("demo: [4/4] exporting FP32 and FP16 ONNX, checked against PyTorch on the val images")
    from edgedet.export.onnx_export import ExportOptions, export_model, summarize

    exported = export_model(ExportOptions(model=None, weights=str(result.best), fp16=True, out_dir=str(root / "export"),
                                          verify=len(val), verify_source=str(synth.images_dir / "val_*.jpg")))
    summarize(exported)
    print(f"checkpoint: {result.best}\nonnx:       {', '.join(str(p) for p in exported.artifacts.values())}\n"
          f"video:      {synth.video}\ncurves:     {Path(result.out_dir) / 'curves.png'}")
    log.note(f"demo: done in {time.perf_counter() - t0:.0f}s; mAP@0.5 {metrics.stats['AP50']:.3f}")
    return 0
