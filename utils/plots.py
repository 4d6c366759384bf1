"""Figures for the notebooks; each is saved as a PNG and returned (a notebook shows it inline)."""

from pathlib import Path

import matplotlib.pyplot as plt
import torch
from matplotlib.ticker import MaxNLocator

from .datafiles import CLASSES


def save_figure(fig, path) -> plt.Figure:
    """Save `fig` as a PNG at `path` (if given) and close it; returned, so a notebook shows it once."""
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)  # no figures pile up in scripts
    return fig


def _digit_grid(images, titles, ncols, title=None, path=None):
    nrows = -(-len(images) // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(1.3 * ncols, 1.5 * nrows), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, img, t in zip(axes.flat, images, titles, strict=False):  # more axes than images
        ax.imshow(img.squeeze().cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(t, fontsize=8)
    if title:
        fig.suptitle(title)
    return save_figure(fig, path)


def plot_augmentations(images, augment, generator, n_versions=3, path=None, title=None):
    """Row 1: original digits (float, [0, 1]); rows below: `n_versions` independent augmentations of them."""
    rows = [images] + [augment(images, generator) for _ in range(n_versions)]
    names = ["original"] + [f"augmented {i + 1}" for i in range(n_versions)]
    titles = [name if col == 0 else "" for name in names for col in range(len(images))]  # label each row once
    return _digit_grid(torch.cat(rows), titles, ncols=len(images), title=title, path=path)


def plot_curves(history, path=None, bar=None):
    """Loss, accuracy, a zoom on the accuracy of the last epochs, and learning rate per epoch; `bar` (a fraction,
    e.g. the model's target 0.994) is drawn as a dashed line on both accuracy panels."""
    epochs = [h["epoch"] for h in history]
    fig, ((ax_loss, ax_acc), (ax_lr, ax_zoom)) = plt.subplots(2, 2, figsize=(12, 7), layout="constrained")
    last = epochs[-max(3, len(epochs) // 2) :]  # the zoom: the second half of training, at least 3 epochs
    zoomed = []
    for split, key in (("train", "train"), (history[0]["split"], "eval")):
        acc = [100 * h[f"{key}_acc"] for h in history]
        ax_loss.plot(epochs, [h[f"{key}_loss"] for h in history], marker="o", label=split)
        ax_acc.plot(epochs, acc, marker="o", label=split)
        ax_zoom.plot(last, acc[-len(last) :], marker="o", label=split)
        zoomed += acc[-len(last) :]
    ax_lr.plot(epochs, [h["lr"] for h in history], marker="o")
    if bar is not None:
        for ax in (ax_acc, ax_zoom):
            ax.axhline(100 * bar, color="black", linestyle="--", linewidth=1, label=f"target {100 * bar:.2f}%")
        zoomed.append(100 * bar)
    ax_zoom.set_ylim(min(zoomed) - 0.1, max(zoomed) + 0.1)
    for ax, name in (
        (ax_loss, "loss"),
        (ax_acc, "accuracy (%)"),
        (ax_lr, "learning rate (epoch start)"),
        (ax_zoom, f"accuracy (%), last {len(last)} epochs"),
    ):
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (ax_loss, ax_acc, ax_zoom):
        ax.legend()
    return save_figure(fig, path)


def plot_misclassified(images, logits, labels, n=30, path=None, classes=CLASSES["mnist"]):
    """The first `n` misclassified images of the evaluated split, with predicted and true class names."""
    pred = logits.argmax(1)
    wrong = (pred != labels).nonzero().flatten()[:n].cpu()
    imgs = images[wrong.to(images.device)].float() / 255 if images.dtype == torch.uint8 else images[wrong]
    titles = [f"pred {classes[pred[i]]}\ntrue {classes[labels[i]]}" for i in wrong.tolist()]
    total = int((pred != labels).sum())
    return _digit_grid(imgs, titles, ncols=10, title=f"{total} misclassified of {len(labels)}", path=path)


def confusion_matrix(logits, labels, classes=10) -> torch.Tensor:
    """Counts [true, predicted]."""
    return torch.bincount(labels.cpu() * classes + logits.argmax(1).cpu(), minlength=classes**2).view(classes, classes)


def plot_confusion(logits, labels, path=None, classes=CLASSES["mnist"]):
    """Confusion matrix with counts; the diagonal is drawn dimmed so the errors stand out."""
    cm = confusion_matrix(logits, labels, len(classes))
    off = cm.clone().fill_diagonal_(0)
    fig, ax = plt.subplots(figsize=(6.5, 5.5))
    im = ax.imshow(off.numpy(), cmap="Reds")
    for t in range(len(classes)):
        for p in range(len(classes)):
            ax.text(p, t, int(cm[t, p]), ha="center", va="center", fontsize=8, color="gray" if t == p else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=90 if max(map(len, classes)) > 2 else 0)
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (colour: errors only)")
    fig.colorbar(im, ax=ax)
    return save_figure(fig, path)
