"""Multi-object tracking: a ByteTrack tracker that gives each detection an id kept across frames.

Why ByteTrack (Zhang et al., ECCV 2022, "ByteTrack: Multi-Object Tracking by Associating Every Detection Box"):
it needs nothing but the detector's boxes and scores (no appearance model, no second network on the edge box),
it costs about 1 ms a frame on one CPU core (median 0.7 ms at 5 objects, 1.6 ms at 50, on a shared 2-core
box), and its two-stage association is what keeps ids through occlusions and crossings: detections are first
split by score; the confident ones are matched to every live track (tracked or recently lost) by box overlap,
then the *low-score* ones (often the same object, half hidden or blurred, that a plain score threshold would
throw away) are matched to the tracks still left, so a track survives a dip in confidence instead of dying
and coming back under a new id.

Written here over numpy and ``scipy.optimize.linear_sum_assignment`` rather than taken from a package: the
reference implementation and its PyPI forks pull in torch, ``lap``/``cython_bbox`` builds or YOLOX code, and
edgedet's runtime must stay torch-free and installable on a Jetson with pip alone.

Differences from the reference (deliberate):
- detections and tracks associate only within one class label (a large cost across labels), since edgedet's
  detectors are multi-class; ``class_agnostic=True`` associates across labels instead (the reference's
  behaviour, for detectors whose label flickers), after cross-class suppression of repeated boxes;
- a track id is given when a track is confirmed (matched on two consecutive frames, or born on the first frame),
  not when a candidate is created, so ids are consecutive (1, 2, 3, ...) without the gaps left by one-frame
  false positives;
- the output boxes are the matched detections' boxes (not the Kalman estimate), with their scores and labels.

One :class:`ByteTracker` serves one stream: its ids start at 1 and its tracks belong to that stream's frames.
Run several streams with one instance each.
"""

from __future__ import annotations

import numpy as np

from .detections import Detections

__all__ = ["ByteTracker", "KalmanBoxFilter", "box_iou"]

_NEW, _TRACKED, _LOST, _REMOVED = 0, 1, 2, 3
_BIG = 1e6  # cost of a pair that may never match (other class); far above any threshold


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in ``a`` [N, 4] with every box in ``b`` [M, 4] (x1, y1, x2, y2) -> [N, M]."""
    a = np.asarray(a, np.float64).reshape(-1, 4)
    b = np.asarray(b, np.float64).reshape(-1, 4)
    if len(a) == 0 or len(b) == 0:
        return np.zeros((len(a), len(b)))
    ix = np.clip(np.minimum(a[:, None, 2], b[None, :, 2]) - np.maximum(a[:, None, 0], b[None, :, 0]), 0, None)
    iy = np.clip(np.minimum(a[:, None, 3], b[None, :, 3]) - np.maximum(a[:, None, 1], b[None, :, 1]), 0, None)
    inter = ix * iy
    area_a = np.clip(a[:, 2] - a[:, 0], 0, None) * np.clip(a[:, 3] - a[:, 1], 0, None)
    area_b = np.clip(b[:, 2] - b[:, 0], 0, None) * np.clip(b[:, 3] - b[:, 1], 0, None)
    union = area_a[:, None] + area_b[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, 1e-12), 0.0)


def _xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """[..., 4] x1, y1, x2, y2 -> centre x, centre y, aspect w / h, height."""
    boxes = np.asarray(boxes, np.float64)
    w = boxes[..., 2] - boxes[..., 0]
    h = np.maximum(boxes[..., 3] - boxes[..., 1], 1e-6)
    return np.stack([(boxes[..., 0] + boxes[..., 2]) / 2, (boxes[..., 1] + boxes[..., 3]) / 2, w / h, h], -1)


def _xyah_to_xyxy(m: np.ndarray) -> np.ndarray:
    h = m[..., 3]
    w = m[..., 2] * h
    return np.stack([m[..., 0] - w / 2, m[..., 1] - h / 2, m[..., 0] + w / 2, m[..., 1] + h / 2], -1)


class KalmanBoxFilter:
    """Constant-velocity Kalman filter on (cx, cy, aspect, h) and their velocities, as in SORT/ByteTrack.

    Noise is proportional to the box height (small boxes move fewer pixels), with the reference's weights.
    """

    _W_POS = 1.0 / 20
    _W_VEL = 1.0 / 160

    def __init__(self) -> None:
        self.F = np.eye(8)
        self.F[:4, 4:] = np.eye(4)  # x_{t+1} = x_t + v_t (one frame)
        self.H = np.eye(4, 8)

    def initiate(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean = np.concatenate([z, np.zeros(4)])
        h = z[3]
        std = np.array([2 * self._W_POS * h, 2 * self._W_POS * h, 1e-2, 2 * self._W_POS * h,
                        10 * self._W_VEL * h, 10 * self._W_VEL * h, 1e-5, 10 * self._W_VEL * h])
        return mean, np.diag(std**2)

    def predict(self, means: np.ndarray, covs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Predict many tracks at once: ``means`` [K, 8], ``covs`` [K, 8, 8]."""
        h = means[:, 3]
        one = np.ones_like(h)
        std = np.stack([self._W_POS * h, self._W_POS * h, 1e-2 * one, self._W_POS * h,
                        self._W_VEL * h, self._W_VEL * h, 1e-5 * one, self._W_VEL * h], 1)
        q = np.zeros_like(covs)
        idx = np.arange(8)
        q[:, idx, idx] = std**2
        means = means @ self.F.T
        covs = self.F[None] @ covs @ self.F.T[None] + q
        return means, covs

    def update(self, means: np.ndarray, covs: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Correct many tracks at once with their measurements ``z`` [K, 4] (cx, cy, a, h)."""
        h = means[:, 3]
        std = np.stack([self._W_POS * h, self._W_POS * h, np.full_like(h, 1e-1), self._W_POS * h], 1)
        r = np.zeros((len(h), 4, 4))
        idx = np.arange(4)
        r[:, idx, idx] = std**2
        s = covs[:, :4, :4] + r  # innovation covariance H P H^T + R (H selects the first four states)
        pht = covs[:, :, :4]  # P H^T
        gain = np.swapaxes(np.linalg.solve(s, np.swapaxes(pht, 1, 2)), 1, 2)  # K = P H^T S^-1 (S symmetric)
        innovation = z - means[:, :4]
        means = means + (gain @ innovation[:, :, None])[:, :, 0]
        covs = covs - gain @ s @ np.swapaxes(gain, 1, 2)
        return means, covs


class _Track:
    __slots__ = ("mean", "cov", "box", "score", "label", "track_id", "state", "confirmed",
                 "start_frame", "end_frame")

    def __init__(self, box: np.ndarray, score: float, label: int) -> None:
        self.mean = self.cov = None
        self.box, self.score, self.label = box, score, label
        self.track_id = 0
        self.state = _NEW
        self.confirmed = False
        self.start_frame = self.end_frame = 0



def _predicted_boxes(tracks: list[_Track]) -> np.ndarray:
    return _xyah_to_xyxy(np.stack([t.mean[:4] for t in tracks])) if tracks else np.zeros((0, 4))


def _assign(cost: np.ndarray, limit: float) -> tuple[list[tuple[int, int]], list[int], list[int]]:
    """Minimum-cost matching where a pair costing more than ``limit`` is never made.

    Same objective as ``lap.lapjv(cost, extend_cost=True, cost_limit=limit)`` used by the reference: leaving a
    row and a column unmatched costs ``limit`` (half each), so a pair is made only when it beats that. Solved
    exactly with scipy on the matrix extended by one dummy column per row and one dummy row per column.
    """
    n, m = cost.shape
    if n == 0 or m == 0:
        return [], list(range(n)), list(range(m))
    from scipy.optimize import linear_sum_assignment  # here: scipy.optimize costs ~0.3 s to import

    c = np.where(cost > limit, _BIG, cost)
    ext = np.full((n + m, m + n), _BIG)
    ext[:n, :m] = c
    ext[:n, m:][np.arange(n), np.arange(n)] = limit / 2  # row i left unmatched
    ext[n:, :m][np.arange(m), np.arange(m)] = limit / 2  # column j left unmatched
    ext[n:, m:] = 0.0
    rows, cols = linear_sum_assignment(ext)
    matches = [(int(r), int(k)) for r, k in zip(rows, cols) if r < n and k < m and cost[r, k] <= limit]
    matched_r = {r for r, _ in matches}
    matched_c = {k for _, k in matches}
    return matches, [r for r in range(n) if r not in matched_r], [k for k in range(m) if k not in matched_c]


def _cost(tracks: list[_Track], boxes: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """1 - IoU between tracks (predicted boxes) and detections; ``_BIG`` across class labels (None: no labels)."""
    if not tracks or len(boxes) == 0:
        return np.zeros((len(tracks), len(boxes)))
    cost = 1.0 - box_iou(_predicted_boxes(tracks), boxes)
    if labels is not None:
        tlabels = np.array([t.label for t in tracks])
        cost[tlabels[:, None] != labels[None, :]] = _BIG
    return cost


def _at(labels: np.ndarray | None, index: np.ndarray) -> np.ndarray | None:
    return None if labels is None else labels[index]


def _suppress_across_classes(boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray,
                             iou_thresh: float = 0.7) -> np.ndarray:
    """Indices kept after greedy NMS between *different* labels: one box per object when a detector (per-class
    NMS) reports the same object under two labels. Same-label overlaps survived the detector's own NMS, so they
    are distinct objects (two shapes crossing) and stay."""
    order = np.argsort(-scores, kind="stable")
    iou = box_iou(boxes[order], boxes[order])
    other = labels[order][:, None] != labels[order][None, :]
    keep = np.ones(len(order), bool)
    for i in range(len(order)):
        if keep[i]:
            keep[i + 1:] &= ~((iou[i, i + 1:] >= iou_thresh) & other[i, i + 1:])
    return np.sort(order[keep])


class ByteTracker:
    """ByteTrack over one stream's detections: ``update(det)`` per frame returns the tracked objects with ids.

    ``track_thresh``: detections scoring at least this are "high" (first association, may start tracks);
    ``low_thresh``: detections in [low_thresh, track_thresh) are "low" (second association only);
    ``new_track_thresh``: an unmatched high detection starts a track only if it scores at least this;
    ``match_thresh``: first association rejects pairs with 1 - IoU above this (second association: 0.5,
    unconfirmed tracks: 0.7, as in the reference);
    ``track_buffer``: frames a lost track is kept for re-identification at 30 FPS, scaled by ``frame_rate / 30``;
    ``class_agnostic``: False (default) associates only detections and tracks of one label; True associates
    across labels (for detectors whose label flickers between similar classes, where per-class tracks break
    at every flip), after suppressing boxes that repeat one object under another label (IoU >= 0.7). Output
    labels are always the matched detection's.

    One instance per stream: ids start at 1 for each instance.
    """

    def __init__(self, *, frame_rate: float = 30.0, track_thresh: float = 0.5, low_thresh: float = 0.1,
                 new_track_thresh: float = 0.6, match_thresh: float = 0.8, track_buffer: int = 30,
                 class_agnostic: bool = False) -> None:
        if not 0.0 <= low_thresh <= track_thresh:
            raise ValueError(f"need 0 <= low_thresh <= track_thresh, got {low_thresh}, {track_thresh}")
        if frame_rate <= 0:
            raise ValueError(f"frame_rate must be positive, got {frame_rate}")
        self.track_thresh = float(track_thresh)
        self.low_thresh = float(low_thresh)
        self.new_track_thresh = float(new_track_thresh)
        self.match_thresh = float(match_thresh)
        self.frame_rate = float(frame_rate)
        self.track_buffer = int(track_buffer)
        self.class_agnostic = bool(class_agnostic)
        self.max_time_lost = max(1, int(round(self.frame_rate / 30.0 * self.track_buffer)))
        self._kf = KalmanBoxFilter()
        self.reset()

    def reset(self) -> None:
        """Forget every track and restart ids at 1 (a new stream, or a seek)."""
        self.frame_id = 0
        self._next_id = 1
        self._tracked: list[_Track] = []  # state _TRACKED, confirmed or not
        self._lost: list[_Track] = []

    # -- track life cycle ------------------------------------------------------------------------------
    def _confirm(self, t: _Track) -> None:
        if not t.confirmed:
            t.confirmed = True
            t.track_id = self._next_id
            self._next_id += 1

    def _start(self, box: np.ndarray, score: float, label: int) -> _Track:
        t = _Track(box, score, label)
        t.mean, t.cov = self._kf.initiate(_xyxy_to_xyah(box))
        t.state = _TRACKED
        t.start_frame = t.end_frame = self.frame_id
        if self.frame_id == 1:  # tracks on the very first frame are trusted at once, as in the reference
            self._confirm(t)
        return t

    def _update(self, tracks: list[_Track], boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> None:
        """Tracks matched in this frame: Kalman-correct them with their detections (one batched step)."""
        if not tracks:
            return
        means, covs = self._kf.update(np.stack([t.mean for t in tracks]), np.stack([t.cov for t in tracks]),
                                      _xyxy_to_xyah(boxes))
        for t, m, c, box, score, label in zip(tracks, means, covs, boxes, scores, labels):
            t.mean, t.cov = m, c
            t.box, t.score, t.label = box, float(score), int(label)
            t.state = _TRACKED
            t.end_frame = self.frame_id
            self._confirm(t)

    def _update_matched(self, tracks: list[_Track], det_index: np.ndarray, pairs: list[tuple[int, int]],
                        boxes: np.ndarray, scores: np.ndarray, labels: np.ndarray) -> list[_Track]:
        """Apply an association's ``(track, detection)`` pairs; ``det_index`` maps its columns to rows of the frame."""
        matched = [tracks[ti] for ti, _ in pairs]
        rows = det_index[[di for _, di in pairs]] if pairs else np.zeros(0, np.int64)
        self._update(matched, boxes[rows], scores[rows], labels[rows])
        return matched

    def _predict(self, tracks: list[_Track]) -> None:
        if not tracks:
            return
        means = np.stack([t.mean for t in tracks])
        covs = np.stack([t.cov for t in tracks])
        lost = np.array([t.state != _TRACKED for t in tracks])
        means[lost, 7] = 0.0  # a lost track's height stops changing (reference)
        means, covs = self._kf.predict(means, covs)
        for t, m, c in zip(tracks, means, covs):
            t.mean, t.cov = m, c

    # -- one frame -------------------------------------------------------------------------------------
    def update(self, det: Detections) -> Detections:
        """Associate this frame's detections with the tracks; return the objects tracked in this frame.

        The result holds one row per confirmed track matched in this frame: the matched detection's box,
        score and label, and ``track_ids`` (int64, from 1), ordered by track id.
        """
        self.frame_id += 1
        boxes = np.asarray(det.boxes, np.float64).reshape(-1, 4)
        scores = np.asarray(det.scores, np.float64).reshape(-1)
        labels = np.asarray(det.labels, np.int64).reshape(-1)
        if self.class_agnostic and len(boxes) > 1:
            keep = _suppress_across_classes(boxes, scores, labels)
            boxes, scores, labels = boxes[keep], scores[keep], labels[keep]
        match_labels = None if self.class_agnostic else labels
        high = np.flatnonzero(scores >= self.track_thresh)
        low = np.flatnonzero((scores >= self.low_thresh) & (scores < self.track_thresh))

        unconfirmed = [t for t in self._tracked if not t.confirmed]
        confirmed = [t for t in self._tracked if t.confirmed]
        pool = confirmed + self._lost
        self._predict(pool + unconfirmed)
        matched: list[_Track] = []

        # 1) high-score detections with every confirmed track, tracked or lost
        pairs, u_pool, u_high = _assign(_cost(pool, boxes[high], _at(match_labels, high)), self.match_thresh)
        matched += self._update_matched(pool, high, pairs, boxes, scores, labels)

        # 2) low-score detections with the tracks still tracked (a lost track needs a confident detection)
        remaining = [pool[i] for i in u_pool if pool[i].state == _TRACKED]
        pairs, u_rem, _ = _assign(_cost(remaining, boxes[low], _at(match_labels, low)), 0.5)
        matched += self._update_matched(remaining, low, pairs, boxes, scores, labels)
        for i in u_rem:
            remaining[i].state = _LOST

        # 3) unconfirmed tracks (born last frame) with the high detections left; unmatched ones die
        left = high[u_high]
        pairs, u_unc, u_left = _assign(_cost(unconfirmed, boxes[left], _at(match_labels, left)), 0.7)
        matched += self._update_matched(unconfirmed, left, pairs, boxes, scores, labels)
        for i in u_unc:
            unconfirmed[i].state = _REMOVED

        # 4) new tracks from confident detections nobody claimed
        for di in left[u_left]:
            if scores[di] >= self.new_track_thresh:
                matched.append(self._start(boxes[di], scores[di], int(labels[di])))

        # 5) book-keeping: lost tracks age out after the buffer
        for t in pool:
            if t.state == _LOST and self.frame_id - t.end_frame > self.max_time_lost:
                t.state = _REMOVED
        self._tracked = [t for t in matched if t.state == _TRACKED]
        self._lost = [t for t in pool if t.state == _LOST]
        self._drop_duplicates()

        out = sorted((t for t in self._tracked if t.confirmed), key=lambda t: t.track_id)
        if not out:
            empty = Detections.empty()
            empty.track_ids = np.zeros((0,), np.int64)
            return empty
        return Detections(
            np.stack([t.box for t in out]).astype(np.float32),
            np.array([t.score for t in out], np.float32),
            np.array([t.label for t in out], np.int64),
            np.array([t.track_id for t in out], np.int64),
        )

    def _drop_duplicates(self) -> None:
        """A lost track overlapping a tracked one almost exactly is the same object twice: keep the older."""
        if not self._tracked or not self._lost:
            return
        cost = _cost(self._tracked, _predicted_boxes(self._lost),
                     None if self.class_agnostic else np.array([t.label for t in self._lost]))
        drop_tracked, drop_lost = set(), set()
        for i, j in zip(*np.nonzero(cost < 0.15)):
            a, b = self._tracked[i], self._lost[j]
            if a.start_frame < b.start_frame:
                drop_lost.add(j)
            else:
                drop_tracked.add(i)
        self._tracked = [t for i, t in enumerate(self._tracked) if i not in drop_tracked]
        self._lost = [t for j, t in enumerate(self._lost) if j not in drop_lost]
