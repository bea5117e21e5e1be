"""One reusable epoch loop for supervised stages (V, M): validation, keep-best, resume, and a
NaN guard. Each epoch ends with ``<stage>/last.pt`` (model, optimiser, RNG, counters) so a kill
loses at most the epoch in progress."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from worldmodels.errors import TrainingDivergedError
from worldmodels.progress import progress_bar
from worldmodels.runs import Context, RunDir, model_payload, np_rng_state, restore_np_rng

LossFn = Callable[[nn.Module, Any, int | None], tuple[Tensor, dict[str, float]]]


@dataclass
class StageData:
    """What a supervised stage (V, M, joint) is trained from."""

    ctx: Context
    train_idx: list[int]
    val_idx: list[int]

    @property
    def outputs(self) -> tuple[Any, bool]:
        """(TensorBoard writer, whether to show progress bars)."""
        return self.ctx.writer, self.ctx.progress


@dataclass
class Stage:
    """What the loop needs to know about one supervised stage."""

    name: str  # "vision" or "memory": checkpoint folder and TensorBoard prefix
    model: nn.Module
    model_name: str
    model_kwargs: dict[str, Any]
    epochs: int
    lr: float
    grad_clip: float
    train_batches: Callable[[np.random.Generator], Iterator[Any]]
    val_batches: Callable[[], Iterator[Any]] | None
    loss: LossFn
    batch_items: Callable[[Any], int]
    header: dict[str, Any] = field(default_factory=dict)
    """Saved in every checkpoint (env shape signature, consumed artifacts, config)."""
    on_epoch_end: Callable[[int, Any], None] | None = None
    patience: int = 0
    """Stop after this many epochs without a better validation score (0 = never)."""


def stage_complete(run: RunDir, name: str) -> bool:
    if not run.has(f"{name}/last") or not run.has(f"{name}/best"):
        return False
    return bool(run.load(f"{name}/last")["progress"].get("complete"))


def _mean_val(stage: Stage, epoch: int) -> float | None:
    """The validation loss under one fixed objective (``epoch=None``: no schedule, the final
    beta, full-length open-loop rollouts, no random teacher forcing), so that epochs compare
    (mbrl-lib's ``eval_score``): under each epoch's own schedule an early epoch with a small
    beta or short rollouts looked best."""
    if stage.val_batches is None:
        return None
    stage.model.eval()
    total, count = 0.0, 0
    with torch.no_grad():
        for batch in stage.val_batches():
            loss, _ = stage.loss(stage.model, batch, None)  # the fixed objective
            n = stage.batch_items(batch)
            total += float(loss) * n
            count += n
    stage.model.train()
    return total / count if count else None


def train_supervised(
    run: RunDir, stage: Stage, seed: int, writer: Any, progress: bool = True
) -> dict[str, Any]:
    """Train to ``stage.epochs``, continuing from ``last.pt`` where one exists (the caller
    decides whether continuing is allowed: ``pipeline.require_resume``). Returns metrics."""
    model = stage.model
    optimiser = torch.optim.Adam(model.parameters(), lr=stage.lr)
    rng = np.random.default_rng(seed)
    start, best_val, metrics = 0, math.inf, {}
    since_best = 0
    if run.has(f"{stage.name}/last"):
        last = run.load(f"{stage.name}/last")
        model.load_state_dict(last["model"]["state_dict"])
        optimiser.load_state_dict(last["optimiser"])
        restore_np_rng(rng, last["progress"]["np_rng"])
        torch.set_rng_state(last["progress"]["torch_rng"])
        start = int(last["progress"]["epoch"])
        best_val = float(last["progress"]["best_val"])
        since_best = int(last["progress"].get("metrics", {}).get("since_best", 0))
        metrics = dict(last["progress"].get("metrics", {}))
        if last["progress"].get("complete") and "stopped_early_at_epoch" in metrics:
            return metrics  # early stopping ended it; more epochs would not change that
    else:
        torch.manual_seed(seed)
    model.train()
    if stage.epochs == 0 and not run.has(f"{stage.name}/best"):
        _save(run, stage, optimiser, rng, 0, best_val, metrics, complete=True, best=True)
    for epoch in range(start, stage.epochs):
        t0, items, count = time.time(), 0, 0
        sums: dict[str, float] = {}
        bar = progress_bar(
            stage.train_batches(rng),
            desc=f"{stage.name} epoch {epoch + 1}/{stage.epochs}",
            unit="batch",
            disable=not progress,
            leave=False,
        )
        for step, batch in enumerate(bar):
            loss, m = stage.loss(model, batch, epoch)
            if not torch.isfinite(loss):
                bad = [k for k, v in m.items() if not math.isfinite(v)] or ["loss"]
                value = float(loss.detach())
                kept_path = run.ckpt_path(stage.name + "/last")
                kept = (
                    f"the last good checkpoint {kept_path} was kept"
                    if kept_path.exists()
                    else "no checkpoint of this stage had been written yet"
                )
                raise TrainingDivergedError(
                    f"{stage.name} training diverged: {', '.join(bad)} is {value} at epoch "
                    f"{epoch + 1} batch {step}; {kept} (try a lower {stage.name}.lr)"
                )
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            if stage.grad_clip > 0:
                nn.utils.clip_grad_norm_(model.parameters(), stage.grad_clip)
            optimiser.step()
            n = stage.batch_items(batch)
            items += n
            count += 1
            for k, v in m.items():
                sums[k] = sums.get(k, 0.0) + v
            bar.set_postfix(loss=f"{m.get('loss', float(loss.detach())):.4g}")
        bar.close()
        metrics = {k: v / max(count, 1) for k, v in sums.items()}
        val = _mean_val(stage, epoch)
        for k, v in metrics.items():
            writer.add_scalar(f"train/{stage.name}_{k}", v, epoch + 1)
        if val is not None:
            writer.add_scalar(f"val/{stage.name}_loss", val, epoch + 1)
            metrics["val_loss"] = val
        writer.add_scalar("time/fps", items / max(time.time() - t0, 1e-9), epoch + 1)
        score = val if val is not None else metrics.get("loss", math.inf)
        improved = score < best_val
        best_val = min(best_val, score)
        since_best = 0 if improved else since_best + 1
        if stage.on_epoch_end is not None:
            stage.on_epoch_end(epoch + 1, writer)
        stop_early = bool(stage.patience and since_best >= stage.patience)
        if stop_early:
            metrics["stopped_early_at_epoch"] = float(epoch + 1)
        complete = epoch + 1 == stage.epochs or stop_early
        metrics["since_best"] = float(since_best)
        _save(run, stage, optimiser, rng, epoch + 1, best_val, metrics, complete, improved)
        writer.flush()
        if stop_early:
            break
    return metrics


def _save(
    run: RunDir,
    stage: Stage,
    optimiser: torch.optim.Optimizer,
    rng: np.random.Generator,
    epoch: int,
    best_val: float,
    metrics: dict[str, float],
    complete: bool,
    best: bool,
) -> None:
    payload = {
        **stage.header,
        "model": model_payload(stage.model_name, stage.model_kwargs, stage.model),
    }
    if best or not run.has(f"{stage.name}/best"):
        run.save(
            f"{stage.name}/best", {**payload, "progress": {"epoch": epoch, "metrics": metrics}}
        )
    run.save(
        f"{stage.name}/last",
        {
            **payload,
            "optimiser": optimiser.state_dict(),
            "progress": {
                "epoch": epoch,
                "best_val": best_val,
                "complete": complete,
                "metrics": metrics,
                "np_rng": np_rng_state(rng),
                "torch_rng": torch.get_rng_state(),
            },
        },
    )
