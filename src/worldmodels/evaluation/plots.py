"""Figures of ``worldmodels diagnose``: error vs k (log scale, model and baselines) and
predicted-vs-actual scatter plots (the joint latent-MLP world model's figure)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt


def error_vs_k(result: dict[str, Any], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    k = list(range(1, result["horizon"] + 1))
    for ax, space, label in (
        (axes[0], "latent_mse", "latent MSE"),
        (axes[1], "obs_mse", "observation MSE"),
    ):
        for name, style in (("model", "-o"), ("repeat_last", "--"), ("constant_velocity", ":")):
            ax.plot(k, result[space][name], style, label=name.replace("_", " "))
        ax.set_yscale("log")
        ax.set_xlabel("steps ahead k (open loop)")
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def scatter(points: dict[str, Any], path: Path, title: str) -> None:
    fig, axes = plt.subplots(1, 3, figsize=(12, 4))
    labels = {
        "feature0": "observation feature 0 (k = 1)",
        "reward": "reward (k = 1)",
        "done": "done (p vs actual, k = 1)",
    }
    for ax, (key, label) in zip(axes, labels.items(), strict=True):
        pred, true = (x.detach().float().cpu().numpy() for x in points[key])
        ax.scatter(true, pred, s=6, alpha=0.5)
        lo, hi = float(min(true.min(), pred.min())), float(max(true.max(), pred.max()))
        ax.plot([lo, hi], [lo, hi], "k--", linewidth=0.8)
        ax.set_xlabel("actual")
        ax.set_ylabel("predicted")
        ax.set_title(label)
    fig.suptitle(title)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
