"""A training history: one row per epoch, always with the same keys (`ROW`), the split it was scored on named in the
row; what is read from it (the line fit prints, the results metrics.json keeps) and the targets measured on it."""

from collections.abc import Callable
from dataclasses import dataclass

ROW = ("epoch", "split", "train_loss", "train_acc", "eval_loss", "eval_acc", "lr", "train_seconds", "seconds")
SPLITS = {"test": "the test set", "val": "the validation split"}  # what `split` can be, as a sentence names it


def accuracies(history) -> list[float]:
    """The accuracy after each epoch on the split the run was scored on."""
    return [h["eval_acc"] for h in history]


def epoch_line(row: dict, epochs: int) -> str:
    """One epoch as the line fit prints (the executed notebook's record of the run)."""
    return (
        f"epoch {row['epoch']}/{epochs}: train loss {row['train_loss']:.4f} acc {row['train_acc']:.2%} | "
        f"{row['split']} loss {row['eval_loss']:.4f} acc {row['eval_acc']:.2%} | lr {row['lr']:.4f} | "
        f"{row['seconds']:.1f} s"
    )


def results(history) -> dict:
    """What metrics.json keeps of a history besides the rows: the split, the best and the final accuracy, times."""
    acc = accuracies(history)
    return {
        "split": history[0]["split"],
        "best_acc": max(acc),
        "final_acc": acc[-1],
        "train_seconds": sum(h["train_seconds"] for h in history),
        "seconds": sum(h["seconds"] for h in history),
    }


@dataclass(frozen=True)
class Measure:
    """A number read off a history, and what a table calls it."""

    text: str
    of: Callable[[list[float]], float]  # of the accuracies per epoch

    def __call__(self, history) -> float:
        return self.of(accuracies(history))


FIRST_EPOCH = Measure("accuracy after epoch 1", lambda acc: acc[0])
BEST_EPOCH = Measure("best accuracy of any epoch", max)
LAST3_MIN = Measure("lowest accuracy of the last 3 epochs", lambda acc: min(acc[-3:]))


@dataclass(frozen=True)
class Target:
    """What a model promises: `measure(history) >= bar` within `max_epochs`, and `min_train_acc` after epoch 1. The
    promise is for the test set; a run with a validation split is measured the same way there."""

    text: str
    measure: Measure
    bar: float
    max_epochs: int
    min_epochs: int = 1
    min_train_acc: float = 0.0

    def verdict(self, history) -> str:
        """The target, the split it was measured on and whether it was met, as one line says it."""
        split = history[0]["split"]
        where = SPLITS[split] + ("" if split == "test" else " (the target is for the test set)")
        return f"{self.text}, on {where} -> {'met' if self.met(history) else 'NOT met'}"

    def met(self, history) -> bool:
        return (
            self.min_epochs <= len(history) <= self.max_epochs
            and self.measure(history) >= self.bar
            and history[0]["train_acc"] >= self.min_train_acc
        )
