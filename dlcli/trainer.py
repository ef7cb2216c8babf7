"""The one fit loop every task trains with.

A task adapter supplies batches, a loss and dev metrics; a step strategy (dlcli/steps.py) turns a
batch into an update; the trainer owns the schedule, evaluation, early stopping, EMA weights,
checkpointing, resuming and distributed data parallel. It imports no torch itself: the strategy
does what needs it (batch order, random streams, backward), so a model of NumPy tables trained by
its kernel runs without torch.

Reproducibility: the batch order of an epoch depends only on (seed, epoch) and the random
stream of a step (dropout) only on (seed, rank, step), so a run resumed from a saved state
ends with exactly the weights of an uninterrupted one.
"""

from __future__ import annotations

import json
import math
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from dlcli import checkpoint
from dlcli.device import Placement
from dlcli.errors import TrainingError
from dlcli.recipe import TrainConfig
from dlcli.schedules import steps_on_metric


@dataclass
class Progress:
    """Where training stands; everything needed to resume besides the weights and optimizer."""

    epoch: int = 0
    step_in_epoch: int = 0
    global_step: int = 0
    best: float | None = None
    best_step: int = 0
    bad_evals: int = 0
    done: bool = False
    history: list = field(default_factory=list)
    loss_sum: float = 0.0  # the training loss since the last metrics log record, and its steps
    loss_steps: int = 0


class Trainer:
    def __init__(
        self, model, task, cfg: TrainConfig, *, optimizer, scheduler, step, placement: Placement,
        seed: int, save_model: Callable[[object, dict], None], state_path: Path, log_path: Path, console=None,
    ):
        self.model = model  # the module itself; the step strategy runs it forward (under DDP, wrapped)
        self.task = task
        self.cfg = cfg
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.placement = placement
        self.seed = seed
        self.save_model = save_model
        self.state_path = state_path
        self.log_path = log_path
        self.console = console
        self.metric = cfg.metric or task.default_metric
        self.higher_is_better = task.metrics[self.metric]
        self.ema = None
        if cfg.ema_decay:
            from dlcli.nn.ema import EMA

            self.ema = EMA(model, cfg.ema_decay)
        self.progress = Progress()
        self.step = step
        self._stop_requested = False

    def reported(self, score: float) -> float:
        """A stored score (always higher-is-better inside the trainer) as the metric reads."""
        return score if self.higher_is_better else -score

    # ------------------------------------------------------------ state

    def state_dict(self) -> dict:
        p = self.progress
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "step": self.step.state_dict(),
            "ema": self.ema.state_dict() if self.ema else None,
            "task": self.task.train_state(),
            "progress": {k: getattr(p, k) for k in ("epoch", "step_in_epoch", "global_step", "best", "best_step",
                                                    "bad_evals", "done", "loss_sum", "loss_steps")},
        }

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.step.load_state_dict(state.get("step") or {"scaler": state["scaler"]})  # "scaler": older states
        if self.ema and state.get("ema"):
            self.ema.load_state_dict(state["ema"])
        self.task.load_train_state(state.get("task") or {})
        self.progress = Progress(**state["progress"])

    def _save_state(self, extra: dict) -> None:
        if self.placement.is_main:
            checkpoint.save(self.state_path, {**extra, "trainer": self.state_dict()}, checkpoint.STATE_FORMAT)

    # ------------------------------------------------------------ the loop

    def fit(self, state_extra: dict) -> Progress:
        """Train until the epochs, max_steps or patience run out. Returns the final progress."""
        p, cfg = self.progress, self.cfg
        previous = self._install_sigint()
        try:
            with self._progress_bar() as bar:
                while not p.done and p.epoch < cfg.epochs and not (
                    cfg.max_steps and p.global_step >= cfg.max_steps
                ):
                    self._run_epoch(bar, state_extra)
                    if p.done:
                        break
                    p.epoch += 1
                    p.step_in_epoch = 0
                    # every epoch; or at the end, unless its last step was an eval_every step
                    if cfg.eval_every is None or (p.epoch == cfg.epochs and (
                            cfg.eval_every == 0 or p.global_step % cfg.eval_every)):
                        self._evaluate_and_save()
                    if cfg.state_every and p.epoch % cfg.state_every == 0:
                        self._save_state(state_extra)
            if not self.task.has_dev:
                self._save_model({})
            p.done = True
            if cfg.state_every:
                self._save_state(state_extra)
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)
        return p

    def _run_epoch(self, bar, state_extra: dict) -> None:
        p, cfg, rank = self.progress, self.cfg, self.placement
        batches = self.step.batches(cfg.batch_size, self.seed * 7919 + p.epoch)
        if rank.distributed:  # each rank takes its share of one global order, equal counts
            per_rank = len(batches) // rank.world_size
            batches = batches[rank.rank :: rank.world_size][:per_rank]
        bar.reset(len(batches), p.step_in_epoch, p.epoch)
        started, seen = time.perf_counter(), 0
        for i in range(p.step_in_epoch, len(batches)):
            loss = self._step(batches[i])
            p.step_in_epoch = i + 1
            p.global_step += 1
            seen += len(batches[i]) * rank.world_size
            bar.advance(loss, self._lr(), seen / max(1e-9, time.perf_counter() - started))
            if self._stop_requested:
                self._save_state(state_extra)
                raise KeyboardInterrupt
            evaluated = bool(cfg.eval_every) and p.global_step % cfg.eval_every == 0
            if evaluated:
                self._evaluate_and_save()
                self._save_state(state_extra)
            if p.done:  # patience ran out
                return
            if cfg.max_steps and p.global_step >= cfg.max_steps:
                p.done = True
                if not evaluated:
                    self._evaluate_and_save()
                return

    def _step(self, indices: list[int]) -> float:
        p = self.progress
        step_seed = (self.seed * 1_000_003 + self.placement.rank * 10_007 + p.global_step) % 2**63
        value = self.step(indices, self._lr(), self._check_finite, step_seed)
        p.loss_sum, p.loss_steps = p.loss_sum + value, p.loss_steps + 1
        if not steps_on_metric(self.scheduler):
            self.scheduler.step()
        self.task.after_step(self.model)
        if self.ema:
            self.ema.update(self.model)
        return value

    def _check_finite(self, value: float) -> None:
        if not math.isfinite(value):
            p = self.progress
            raise TrainingError(
                f"the training loss became {value} at step {p.global_step + 1} (epoch {p.epoch + 1})",
                "lower the learning rate or set train.grad_clip; the last good checkpoint was kept",
            )

    # ------------------------------------------------------------ evaluation

    def _evaluate_and_save(self) -> None:
        p = self.progress
        record = {"epoch": p.epoch, "step": p.global_step, "lr": self._lr()}
        if p.loss_steps:  # the mean training loss since the previous record (on rank 0)
            record["train_loss"] = p.loss_sum / p.loss_steps
            p.loss_sum, p.loss_steps = 0.0, 0
        if self.task.has_dev:
            metrics = self._evaluate()
            score = metrics[self.metric]
            higher = score if self.higher_is_better else -score
            if steps_on_metric(self.scheduler):
                self.scheduler.step(higher)
            improved = p.best is None or higher > p.best
            if improved:
                p.best, p.best_step, p.bad_evals = higher, p.global_step, 0
                self._save_model(metrics)
            else:
                p.bad_evals += 1
                if self.cfg.patience and p.bad_evals >= self.cfg.patience:
                    p.done = True
            record["dev"] = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
            record["best"] = improved
            self._say(f"epoch {p.epoch} step {p.global_step}: "
                      f"dev {self.metric} {score:.4f}" + (" (best)" if improved else ""))
        self._log(record)

    def _evaluate(self) -> dict:
        self.model.eval()
        if self.ema:
            with self.ema.applied(self.model):
                return self.task.evaluate(self.model)
        return self.task.evaluate(self.model)

    def _save_model(self, metrics: dict) -> None:
        if not self.placement.is_main:
            return
        summary = {k: v for k, v in metrics.items() if isinstance(v, (int, float))}
        summary.update(step=self.progress.global_step, epoch=self.progress.epoch)
        if self.ema:
            with self.ema.applied(self.model):
                self.save_model(self.model, summary)
        else:
            self.save_model(self.model, summary)

    # ------------------------------------------------------------ plumbing

    def _lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def _log(self, record: dict) -> None:
        if self.placement.is_main:
            with open(self.log_path, "a", encoding="utf-8") as fh:
                fh.write(json.dumps(record) + "\n")

    def _say(self, message: str) -> None:
        if self.console is not None and self.placement.is_main:
            self.console.print(message)

    def _install_sigint(self):
        """First Ctrl-C: finish the current step, save a resumable state, exit 130."""
        import threading

        if threading.current_thread() is not threading.main_thread():
            return None

        def handler(signum, frame):
            if self._stop_requested:
                raise KeyboardInterrupt
            self._stop_requested = True

        return signal.signal(signal.SIGINT, handler)

    def _progress_bar(self):
        return _Bar(self.console if self.placement.is_main else None, self.cfg.epochs)


class _Bar:
    """A Rich progress bar on stderr: loss, lr, examples/s and ETA for the current epoch."""

    def __init__(self, console, epochs: int):
        self.console, self.epochs = console, epochs
        self._progress = None
        self._task = None
        self._loss = None

    def __enter__(self):
        if self.console is not None:
            from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

            self._progress = Progress(
                TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                TextColumn("{task.fields[stats]}"), TimeRemainingColumn(), console=self.console,
                transient=True,
            )
            self._progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.__exit__(*exc)

    def reset(self, total: int, done: int, epoch: int) -> None:
        if self._progress is None:
            return
        if self._task is not None:
            self._progress.remove_task(self._task)
        self._task = self._progress.add_task(f"epoch {epoch + 1}/{self.epochs}", total=total,
                                             completed=done, stats="")

    def advance(self, loss: float, lr: float, rate: float) -> None:
        if self._progress is None:
            return
        self._loss = loss if self._loss is None else 0.98 * self._loss + 0.02 * loss
        stats = f"loss {self._loss:.4f}  lr {lr:.3g}  {rate:,.0f} ex/s"
        self._progress.update(self._task, advance=1, stats=stats)
