import torch

from utils.data import class_names
from utils.plots import confusion_matrix, plot_confusion, plot_misclassified


def test_class_names_come_from_torchvision_in_label_order():
    assert class_names("mnist") == [str(d) for d in range(10)]
    fashion = class_names("fashion_mnist")
    assert fashion[0] == "T-shirt/top" and fashion[9] == "Ankle boot" and len(fashion) == 10


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
