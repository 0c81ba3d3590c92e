"""The training curves PNG: loss terms per epoch beside validation mAP."""

from __future__ import annotations

from pathlib import Path

from edgedet.fileio import atomic_path


def plot_history(history: list[dict], path: str | Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, (ax_loss, ax_map) = plt.subplots(1, 2, figsize=(10, 4))
    for key in sorted({k for h in history for k in h["losses"]}):
        ax_loss.plot(epochs, [h["losses"].get(key) for h in history], marker="o", label=key)
    ax_loss.set(title="training loss", xlabel="epoch")
    ax_loss.legend()
    evals = [(h["epoch"], h["val"]) for h in history if h.get("val")]
    if evals:
        ax_map.plot([e for e, _ in evals], [v["AP"] for _, v in evals], marker="o", label="mAP@[.5:.95]")
        ax_map.plot([e for e, _ in evals], [v["AP50"] for _, v in evals], marker="o", label="mAP@0.5")
        ax_map.legend()
    ax_map.set(title="validation", xlabel="epoch", ylim=(0, 1), xlim=ax_loss.get_xlim())
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=100)
    plt.close(fig)
    return Path(path)
