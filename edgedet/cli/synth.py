"""``edgedet synth``: write the synthetic dataset every offline stage (tests, demo) runs on."""

from __future__ import annotations

import argparse

from edgedet.cli import _vocabulary as v

HELP = "write a deterministic synthetic detection dataset (COCO JSON, train/val, optional MP4)"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add(p, "out", required=True)
    v.add(p, "count", default=200, deprecated=("--images",))
    p.add_argument("--val-fraction", type=float, default=0.2, help="share of images in the val split (default 0.2)")
    v.add(p, "seed", default=0, detail="the same seed gives the same dataset")
    p.add_argument("--with-video", action="store_true", help="also write video.mp4 of moving shapes and video_gt.txt, their tracks in MOTChallenge format")
    v.deprecated_alias(p, "--video", dest="with_video", new="--with-video", store_true=True)


def run(args: argparse.Namespace) -> int:
    from edgedet import log
    from edgedet.data.synth import make_synthetic_dataset

    s = make_synthetic_dataset(args.out, images=args.count, val_fraction=args.val_fraction, seed=args.seed,
                               video=args.with_video, progress=True)
    log.note(f"synth: {s.num_train} train + {s.num_val} val images in {s.images_dir}")
    print(f"train: {s.train_json}\nval:   {s.val_json}\nimages: {s.images_dir}" + (f"\nvideo: {s.video}\nvideo gt: {s.video_gt}" if s.video else ""))
    return 0
