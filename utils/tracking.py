"""TensorBoard event files in a run folder: the per-epoch history while it trains, then its parameters and
results as hparams, so `tensorboard --logdir runs` (make tensorboard) compares runs and sweeps side by side."""

from pathlib import Path

from torch.utils.tensorboard import SummaryWriter


class TensorBoardLog:
    """`epoch(row)` after each epoch (the `on_epoch` of `engine.fit`), `finish(config, metrics)` at the end."""

    def __init__(self, folder):
        self.writer = SummaryWriter(Path(folder) / "tensorboard")

    def epoch(self, row: dict) -> None:
        step = row["epoch"]
        for split, key in (("train", "train"), (row["split"], "eval")):
            self.writer.add_scalar(f"accuracy/{split}", row[f"{key}_acc"], step)
            self.writer.add_scalar(f"loss/{split}", row[f"{key}_loss"], step)
        self.writer.add_scalar("lr", row["lr"], step)
        self.writer.add_scalar("seconds", row["seconds"], step)
        self.writer.flush()  # a run that stops keeps its epochs so far

    def finish(self, config: dict, metrics: dict) -> None:
        """The run's parameters and its best and final accuracy as hparams (TensorBoard's HPARAMS tab)."""
        hparams = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in config.items()}
        results = {k: metrics[k] for k in ("best_acc", "final_acc")}
        self.writer.add_hparams(hparams, {f"hparam/{k}": v for k, v in results.items()}, run_name=".")
        self.writer.close()
