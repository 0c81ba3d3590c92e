"""A deterministic synthetic detection dataset, so every stage of edgedet runs offline.

Filled shapes of several classes on textured backgrounds, at varied sizes and aspect ratios;
some images hold no objects and a few are all black (failure cases the export must survive).
Written as COCO JSON (train and val splits) plus an optional MP4 of moving shapes with their ground-truth
tracks (MOTChallenge ``gt.txt`` format), so tracking can be measured.
Torch-free: only numpy, OpenCV and PIL.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edgedet.errors import DataError
from edgedet.fileio import atomic_path, atomic_write_bytes, atomic_write_json, atomic_write_text

CLASSES = ["circle", "square", "triangle"]
IMAGE_SIZES = [(224, 224), (256, 192), (192, 256)]  # (width, height): varied aspect ratios
EMPTY_FRACTION = 0.08
BLACK_FRACTION = 0.03


@dataclass
class SynthSummary:
    root: Path
    train_json: Path
    val_json: Path
    images_dir: Path
    num_train: int
    num_val: int
    video: Path | None
    video_gt: Path | None = None  # MOTChallenge ground truth of the video's moving shapes


def _background(rng: np.random.Generator, w: int, h: int) -> np.ndarray:
    """Low-frequency colour noise plus a gradient and a few lines: texture a detector must ignore."""
    small = rng.integers(0, 256, size=(rng.integers(3, 9), rng.integers(3, 9), 3), dtype=np.uint8)
    img = cv2.resize(small, (w, h), interpolation=cv2.INTER_CUBIC).astype(np.float32)
    grad = np.linspace(0, rng.uniform(-60, 60), w, dtype=np.float32)[None, :, None]
    img = np.clip(img * 0.6 + 50 + grad + rng.normal(0, 8, size=(h, w, 3)), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 4))):
        p1 = tuple(int(v) for v in rng.integers(0, [w, h]))
        p2 = tuple(int(v) for v in rng.integers(0, [w, h]))
        cv2.line(img, p1, p2, tuple(int(c) for c in rng.integers(0, 256, 3)), int(rng.integers(1, 3)))
    return img


def _draw(img: np.ndarray, cls: int, box: tuple[int, int, int, int], color: tuple[int, int, int]) -> None:
    x1, y1, x2, y2 = box
    if CLASSES[cls] == "circle":
        cv2.ellipse(img, (((x1 + x2) / 2, (y1 + y2) / 2), (x2 - x1 - 1, y2 - y1 - 1), 0), color, -1, cv2.LINE_AA)
    elif CLASSES[cls] == "square":
        cv2.rectangle(img, (x1, y1), (x2 - 1, y2 - 1), color, -1)
    else:
        pts = np.array([[(x1 + x2) // 2, y1], [x2 - 1, y2 - 1], [x1, y2 - 1]], np.int32)
        cv2.fillPoly(img, [pts], color, cv2.LINE_AA)


def _contrasting_color(rng: np.random.Generator, img: np.ndarray, box: tuple[int, int, int, int]) -> tuple[int, int, int]:
    x1, y1, x2, y2 = box
    mean = img[y1:y2, x1:x2].reshape(-1, 3).mean(0)
    for _ in range(20):
        c = rng.integers(0, 256, 3)
        if np.abs(c - mean).sum() > 200:
            break
    return tuple(int(v) for v in c)


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


def render_image(rng: np.random.Generator, w: int, h: int, kind: str = "objects") -> tuple[np.ndarray, list]:
    """One RGB image and its objects as ``[(class_index, (x1, y1, x2, y2)), ...]``."""
    if kind == "black":
        return np.zeros((h, w, 3), np.uint8), []
    img = _background(rng, w, h)
    objects: list[tuple[int, tuple[int, int, int, int]]] = []
    if kind == "empty":
        return img, objects
    for _ in range(int(rng.integers(1, 5))):
        side = min(w, h)
        bw = int(rng.uniform(0.15, 0.45) * side)
        bh = int(np.clip(bw * rng.uniform(0.7, 1.4), 0.12 * side, 0.5 * side))
        x1, y1 = int(rng.integers(0, w - bw)), int(rng.integers(0, h - bh))
        box = (x1, y1, x1 + bw, y1 + bh)
        if any(_iou(box, b) > 0.05 for _, b in objects):
            continue
        cls = int(rng.integers(0, len(CLASSES)))
        _draw(img, cls, box, _contrasting_color(rng, img, box))
        objects.append((cls, box))
    return img, objects


def _coco(images: list[dict], anns: list[dict]) -> dict:
    cats = [{"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASSES)]
    return {"info": {"description": "edgedet synthetic shapes"}, "images": images, "annotations": anns, "categories": cats}


def _write_jpeg(path: Path, img: np.ndarray) -> None:
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(img, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 92])
    if not ok:
        raise DataError(f"cannot encode {path}")
    atomic_write_bytes(path, buf.tobytes())


def video_gt_path(video: str | Path) -> Path:
    """Where :func:`write_video` puts the ground truth of ``video``: ``<stem>_gt.txt`` beside it."""
    video = Path(video)
    return video.with_name(video.stem + "_gt.txt")


def _crossing_pair(rng: np.random.Generator, w: int, h: int, frames: int) -> tuple[int, int, list[np.ndarray]]:
    """Two shapes of one class on straight diagonals that cross in the frame centre, back and forth.

    Object A runs top-left -> bottom-right while B runs top-right -> bottom-left, both reaching the centre at
    the same frame, so B (drawn later) hides A there: the case where a tracker swaps ids. They turn back at the
    ends of their paths (period 120 frames), so a long video crosses them again every 60 frames.
    """
    cls = int(rng.integers(0, len(CLASSES)))
    side = min(w, h)
    bw = max(8, int(rng.uniform(0.15, 0.2) * side))
    bh = max(8, int(bw * rng.uniform(0.85, 1.15)))
    period = 120
    t = np.arange(frames)
    phase = (t % period) / period
    u = np.where(phase < 0.5, 2 * phase, 2 - 2 * phase)  # 0 -> 1 -> 0, crossing at u = 0.5 (t = 30, 90, ...)
    x_lo, x_hi = 0.1 * w, 0.9 * w - bw
    y_lo, y_hi = 0.1 * h, 0.9 * h - bh
    ya = y_lo + u * (y_hi - y_lo)
    paths = [np.stack([x_lo + u * (x_hi - x_lo), ya], 1), np.stack([x_hi - u * (x_hi - x_lo), ya], 1)]
    return cls, (bw, bh), [np.round(p).astype(int) for p in paths]


def write_video(path: Path, *, frames: int = 120, size: tuple[int, int] = (320, 240), fps: int = 30, seed: int = 0) -> Path:
    """An MP4 of shapes drifting over a fixed background, for `edgedet run`, the demo and tracking benchmarks.

    Also writes the shapes' ground-truth tracks beside it (:func:`video_gt_path`), in MOTChallenge ``gt.txt``
    format: ``frame,id,x,y,w,h,1,class,visibility`` per object and frame, frames and ids from 1, ``class`` the
    COCO category id (class index + 1), ``visibility`` the share of the box not hidden by shapes drawn over it.
    One pair of objects of the same class crosses (:func:`_crossing_pair`). The same seed gives the same video.
    """
    rng = np.random.default_rng(seed + 1)
    w, h = size
    bg = _background(rng, w, h)
    _, objects = render_image(rng, w, h)
    objects = objects or [(0, (10, 10, 60, 60))]
    colors = [tuple(int(c) for c in rng.integers(60, 256, 3)) for _ in objects]
    vel = rng.uniform(-2, 2, size=(len(objects), 2))
    pair_cls, (pw, ph), pair_paths = _crossing_pair(rng, w, h, frames)
    pair_colors = [tuple(int(c) for c in rng.integers(60, 256, 3)) for _ in pair_paths]
    gt_lines: list[str] = []
    with atomic_path(path) as tmp:
        tmp_mp4 = tmp.with_suffix(".mp4")
        writer = cv2.VideoWriter(str(tmp_mp4), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        if not writer.isOpened():
            raise DataError("OpenCV cannot write MP4 video here (no mp4v encoder)")
        owner = np.zeros((h, w), np.int32)  # which object's pixels are on top, for visibility
        try:
            for t in range(frames):
                frame = bg.copy()
                placed: list[tuple[int, int, tuple[int, int, int, int], tuple[int, int, int]]] = []
                for k, (cls, (x1, y1, x2, y2)) in enumerate(objects):
                    dx, dy = vel[k] * t
                    bw, bh = x2 - x1, y2 - y1
                    nx = int(np.clip(x1 + dx, 0, w - bw))
                    ny = int(np.clip(y1 + dy, 0, h - bh))
                    placed.append((k + 1, cls, (nx, ny, nx + bw, ny + bh), colors[k]))
                for j, p in enumerate(pair_paths):
                    nx, ny = int(p[t, 0]), int(p[t, 1])
                    placed.append((len(objects) + j + 1, pair_cls, (nx, ny, nx + pw, ny + ph), pair_colors[j]))
                owner[:] = 0
                for oid, cls, box, color in placed:
                    _draw(frame, cls, box, color)
                    owner[box[1]:box[3], box[0]:box[2]] = oid
                for oid, cls, (x1, y1, x2, y2), _ in placed:
                    vis = float((owner[y1:y2, x1:x2] == oid).mean())
                    gt_lines.append(f"{t + 1},{oid},{x1},{y1},{x2 - x1},{y2 - y1},1,{cls + 1},{vis:.3f}")
                writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
        finally:
            writer.release()
        try:
            written = int(cv2.VideoCapture(str(tmp_mp4)).get(cv2.CAP_PROP_FRAME_COUNT))
            if written != frames:  # OpenCV's writer drops frames silently, e.g. on a full disk
                raise DataError(f"cannot write {path}: {written} of {frames} frames written")
            tmp_mp4.replace(tmp)
        finally:
            tmp_mp4.unlink(missing_ok=True)
    atomic_write_text(video_gt_path(path), "\n".join(gt_lines) + "\n")
    return path


def read_video_gt(path: str | Path) -> np.ndarray:
    """A MOTChallenge ``gt.txt`` as a float64 array ``[K, 9]`` (frame, id, x, y, w, h, flag, class, visibility)."""
    rows = np.loadtxt(path, delimiter=",", ndmin=2)
    if rows.size == 0:
        return np.zeros((0, 9))
    if rows.shape[1] != 9:
        raise DataError(f"{path}: expected 9 comma-separated fields per line (MOTChallenge gt), got {rows.shape[1]}")
    return rows


def make_synthetic_dataset(
    out: str | Path,
    *,
    images: int = 200,
    val_fraction: float = 0.2,
    seed: int = 0,
    video: bool = False,
    progress: bool = False,
) -> SynthSummary:
    """Write ``out/images/*.jpg`` and ``out/annotations/{train,val}.json`` (COCO, category ids 1..C)."""
    if images < 2:
        raise DataError("--images must be at least 2 (one train and one val image)")
    if not 0.0 < val_fraction < 1.0:
        raise DataError("--val-fraction must be between 0 and 1")
    root = Path(out)
    img_dir = root / "images"
    img_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    num_val = max(1, int(round(images * val_fraction)))
    splits: dict[str, tuple[list, list]] = {"train": ([], []), "val": ([], [])}
    indices = range(images)
    if progress:
        from tqdm import tqdm

        indices = tqdm(indices, desc="synth", unit="img", disable=None)  # None: no bar when not a terminal
    for i in indices:
        split = "val" if i >= images - num_val else "train"
        u = rng.random()
        kind = "black" if u < BLACK_FRACTION else "empty" if u < BLACK_FRACTION + EMPTY_FRACTION else "objects"
        w, h = IMAGE_SIZES[int(rng.integers(0, len(IMAGE_SIZES)))]
        img, objects = render_image(rng, w, h, kind)
        name = f"{split}_{i:05d}.jpg"
        _write_jpeg(img_dir / name, img)
        ims, anns = splits[split]
        ims.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        for cls, (x1, y1, x2, y2) in objects:
            bw, bh = x2 - x1, y2 - y1
            anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": cls + 1,
                         "bbox": [x1, y1, bw, bh], "area": bw * bh, "iscrowd": 0})
    ann_dir = root / "annotations"
    train_json = atomic_write_json(ann_dir / "train.json", _coco(*splits["train"]))
    val_json = atomic_write_json(ann_dir / "val.json", _coco(*splits["val"]))
    vid = write_video(root / "video.mp4", seed=seed) if video else None
    return SynthSummary(root, train_json, val_json, img_dir, images - num_val, num_val, vid,
                        video_gt_path(vid) if vid else None)
