from utils.data import class_names
from utils.plots import confusion_matrix, plot_confusion, plot_curves, plot_misclassified

import torch


def test_confusion_matrix_counts_true_by_predicted():
    labels = torch.tensor([0, 0, 1, 2, 2, 2])
    logits = torch.nn.functional.one_hot(torch.tensor([0, 1, 1, 2, 2, 0]), 10).float()
    cm = confusion_matrix(logits, labels)
    assert cm[0, 0] == 1 and cm[0, 1] == 1 and cm[1, 1] == 1 and cm[2, 2] == 2 and cm[2, 0] == 1
    assert cm.sum() == len(labels)


def test_fashion_plots_name_the_classes_and_are_saved(tmp_path):
    classes = class_names("fashion_mnist")
    labels = torch.arange(10)
    logits = torch.nn.functional.one_hot((labels + 1) % 10, 10).float()  # every image wrong: k predicted as k+1
    fig = plot_confusion(logits, labels, tmp_path / "confusion.png", classes)
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == classes
    images = torch.zeros(10, 1, 28, 28, dtype=torch.uint8)
    fig = plot_misclassified(images, logits, labels, path=tmp_path / "misclassified.png", classes=classes)
    assert fig.axes[0].get_title() == "pred Trouser\ntrue T-shirt/top"
    assert (tmp_path / "confusion.png").stat().st_size > 0 and (tmp_path / "misclassified.png").stat().st_size > 0


def test_curves_draw_the_target_and_zoom_on_the_last_epochs_with_integer_ticks(tmp_path):
    history = [
        dict(
            epoch=e,
            split="test",
            train_loss=1 / e,
            eval_loss=1 / e,
            train_acc=0.9 + e / 200,
            eval_acc=0.95 + e / 400,
            lr=0.1,
        )  # fmt: skip
        for e in range(1, 13)
    ]
    fig = plot_curves(history, tmp_path / "curves.png", bar=0.98)
    acc, zoom = (next(ax for ax in fig.axes if ax.get_title().startswith(t)) for t in ("accuracy (%)", "accuracy (%),"))
    assert zoom.get_title() == "accuracy (%), last 6 epochs" and list(zoom.lines[0].get_xdata()) == list(range(7, 13))
    for ax in (acc, zoom):
        assert [line.get_label() for line in ax.lines] == ["train", "test", "target 98.00%"]
    assert all(float(t).is_integer() for t in zoom.get_xticks())
    assert zoom.get_ylim()[0] > 93  # zoomed: the first epochs' 90.5% is left out
