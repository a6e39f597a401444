"""PNG plots of a run: loss, and the reward margin (chosen minus rejected) with reward accuracy."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def plot_run(steps: list[dict[str, Any]], eval_rows: list[dict[str, Any]], out: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    written = []
    series = [("loss", "loss", "loss.png"), ("rewards/margins", "reward margin (chosen - rejected)", "margins.png")]
    for key, title, name in series:
        points = [(r["step"], r[key]) for r in steps if key in r]
        if not points:
            continue
        fig, ax = plt.subplots(figsize=(6, 3.4), dpi=110)
        ax.plot([p[0] for p in points], [p[1] for p in points], marker="o", markersize=2, label="train")
        ev = [(r["step"], r[f"eval_{key}"]) for r in eval_rows if f"eval_{key}" in r]
        if ev:
            ax.plot([p[0] for p in ev], [p[1] for p in ev], marker="s", label="eval")
        if key == "rewards/margins":
            acc = [(r["step"], r["rewards/accuracies"]) for r in steps if "rewards/accuracies" in r]
            if acc:
                twin = ax.twinx()
                twin.plot([p[0] for p in acc], [p[1] for p in acc], color="#2f9e44", alpha=0.5, label="reward accuracy")
                twin.set_ylim(0, 1.05)
                twin.set_ylabel("reward accuracy")
        ax.set_xlabel("step")
        ax.set_title(title)
        ax.legend(loc="upper left", fontsize=8)
        fig.tight_layout()
        path = out / name
        fig.savefig(path)
        plt.close(fig)
        written.append(path)
    return written
