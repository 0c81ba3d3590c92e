"""``edgedet synth``: write the synthetic dataset every offline stage (tests, demo) runs on."""

from __future__ import annotations

import argparse

HELP = "write a deterministic synthetic detection dataset (COCO JSON, train/val, optional MP4)"


def add_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--images", type=int, default=200, help="number of images (default 200)")
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of images in the val split (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="random seed: the same seed gives the same dataset (default 0)")
    p.add_argument("--video", action="store_true", help="also write video.mp4 of moving shapes")


def run(args: argparse.Namespace) -> int:
    from edgedet import log
    from edgedet.data.synth import make_synthetic_dataset

    s = make_synthetic_dataset(args.out, images=args.images, val_fraction=args.val_fraction, seed=args.seed,
                               video=args.video, progress=True)
    log.note(f"synth: {s.num_train} train + {s.num_val} val images in {s.images_dir}")
    print(f"train: {s.train_json}\nval:   {s.val_json}\nimages: {s.images_dir}" + (f"\nvideo: {s.video}" if s.video else ""))
    return 0
