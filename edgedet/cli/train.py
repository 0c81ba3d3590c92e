"""``edgedet train``: train a zoo model (GPU with AMP, or CPU; multi-GPU through torchrun).

Multi-GPU: ``torchrun --nproc_per_node=4 -m edgedet train ...``; ``--batch`` is per GPU.
"""

from __future__ import annotations

import argparse
import json

from edgedet.cli import _vocabulary as v

HELP = "train a zoo model on COCO/VOC data (preset recipe + overrides; checkpoints, best tracking, curves)"


def add_args(p: argparse.ArgumentParser) -> None:
    v.add(p, "model", detail="optional with --resume")
    v.add(p, "data", required=True, detail="training split")
    v.add(p, "images")
    p.add_argument("--val-data", help="validation annotations; mAP is evaluated on them each epoch")
    p.add_argument("--val-images", help="image folder of --val-data (default: --images)")
    v.add(p, "weights", detail="initial weights (default none)")
    p.add_argument("--preset", help="recipe in edgedet/train/presets: default (the default), ssdlite, tiny")
    v.add(p, "epochs", detail="default: the preset's")
    v.add(p, "batch", detail="per step, per GPU under torchrun (default: the preset's)")
    p.add_argument("--optimizer", choices=["sgd", "adamw"], help="default: the preset's")
    p.add_argument("--lr", type=float, help="peak learning rate (default: the preset's for its optimizer)")
    p.add_argument("--weight-decay", type=float, help="default: the preset's")
    p.add_argument("--scheduler", choices=["cosine", "step"], help="LR schedule after warm-up (default: the preset's)")
    p.add_argument("--milestones", type=lambda s: [int(x) for x in s.split(",")], help="step scheduler epochs, e.g. 16,22")
    p.add_argument("--warmup-iters", type=int, help="linear LR warm-up iterations (default: the preset's)")
    p.add_argument("--augment", help="none, hflip, ssdlite, ssd")
    p.add_argument("--clip-grad", type=float, help="max gradient norm (0 disables)")
    p.add_argument("--no-amp", dest="amp", action="store_const", const=False, help="disable mixed precision on CUDA")
    p.add_argument("--sync-bn", action="store_const", const=True, help="SyncBatchNorm under torchrun")
    v.add(p, "device")
    p.add_argument("--workers", type=v.non_negative_int, help="DataLoader workers (default: 4 on CUDA, 0 on CPU)")
    p.add_argument("--eval-every", type=v.positive_int, help="COCO evaluation every N epochs (default: the preset's)")
    p.add_argument("--target-ap50", type=float, metavar="AP50",
                   help="stop once the val AP50 reaches this (needs --val-data); --epochs is then the cap")
    v.add(p, "seed", detail="default: the preset's")
    v.add(p, "bad-images", dest="on_bad_image", default=None, detail="default skip")
    p.add_argument("--model-arg", action="append", default=[], metavar="KEY=VALUE",
                   help="builder option, JSON value (e.g. min_size=512, width_mult=0.75); repeatable")
    v.add(p, "out", detail="a run folder (default runs/train/exp)")
    p.add_argument("--resume", help="continue a run from its last.pt, with its own recipe (options given now override it)")


def parse_model_args(items: list[str]) -> dict:
    from edgedet.errors import EdgedetError

    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise EdgedetError(f"--model-arg {item!r} must look like KEY=VALUE")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def run(args: argparse.Namespace) -> int:
    from edgedet.errors import EdgedetError
    from edgedet.train.config import make_config

    options = dict(
        data=args.data, images=args.images, val_data=args.val_data,
        val_images=args.val_images, weights=args.weights, epochs=args.epochs, batch=args.batch,
        optimizer=args.optimizer, lr=args.lr, weight_decay=args.weight_decay, scheduler=args.scheduler,
        milestones=args.milestones, warmup_iters=args.warmup_iters, augment=args.augment,
        clip_grad=args.clip_grad, amp=args.amp,
        sync_bn=args.sync_bn, device=args.device, workers=args.workers, eval_every=args.eval_every,
        target_ap50=args.target_ap50,
        seed=args.seed, on_bad_image=args.on_bad_image, model_kwargs=parse_model_args(args.model_arg) or None,
    )
    if args.resume:
        from edgedet.checkpoint import load_checkpoint
        from edgedet.train.config import resume_config

        saved = load_checkpoint(args.resume).get("config")
        if args.model_arg or (args.preset and args.preset != (saved or {}).get("preset")):
            raise EdgedetError("--resume continues the checkpoint's own recipe and model options: drop --preset and "
                               "--model-arg (or start a new run with --weights)")
        cfg = resume_config(saved, source=args.resume, model=args.model, **options)
    else:
        if args.model is None:
            raise EdgedetError("--model is required (or --resume a last.pt)")
        cfg = make_config(model=args.model, preset=args.preset or "default", out=args.out or "runs/train/exp",
                          **options)
    from edgedet import log
    from edgedet.train.engine import train

    r = train(cfg, resume=args.resume)
    if not r.is_main:  # under torchrun every rank returns here; rank 0 alone reports
        return 0
    best = f"best mAP@[.5:.95] {r.best_map:.3f} at epoch {r.best_epoch}" if r.best_map >= 0 else "no val split"
    log.note(f"train: done, {r.images_per_second:.1f} images/s; {best}")
    print(f"best: {r.best}\nlast: {r.last}\ncurves: {r.out_dir / 'curves.png'}")
    return 0
