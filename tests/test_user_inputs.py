"""A user's own model and data in: formats, checks, and each bad input a one-line error."""

import textwrap

import numpy as np
import pytest
import torch

from nasq.data import DataSpec, load_dataset
from nasq.errors import NasqError
from nasq.models import ModelSpec, check_classes, load_model

MODEL_CODE = textwrap.dedent("""
    import torch
    from torch import nn

    def small_cnn(classes=10, channels=1):
        return nn.Sequential(nn.Conv2d(channels, 8, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(1),
                             nn.Flatten(), nn.Linear(8, classes))

    def not_a_module():
        return 42

    def broken():
        raise RuntimeError("the factory fails")

    NOT_CALLABLE = 3
""")


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "user_nets.py"
    path.write_text(MODEL_CODE)
    return path


def one_line_error(fn, *args, match):
    with pytest.raises(NasqError, match=match) as info:
        fn(*args)
    assert "\n" not in str(info.value)
    return str(info.value)


def test_a_model_comes_in_by_file_factory_with_its_trained_weights(model_file, tmp_path):
    ref = f"{model_file}:small_cnn"
    trained = load_model(ModelSpec(ref, input_shape=(1, 8, 8))).module
    torch.nn.init.constant_(trained[0].weight, 0.5)
    torch.save(trained.state_dict(), tmp_path / "w.pt")
    loaded = load_model(ModelSpec(ref, weights=str(tmp_path / "w.pt"), input_shape=(1, 8, 8)))
    assert loaded.num_outputs == 10 and loaded.input_shape == (1, 8, 8)
    assert torch.equal(loaded.module[0].weight, trained[0].weight)
    assert not loaded.module.training
    assert load_model(ModelSpec(ref, input_shape=(3, 8, 8), kwargs={"classes": 4, "channels": 3})).num_outputs == 4
    check_classes(loaded, 10)
    one_line_error(check_classes, loaded, 7, match="gives 10 outputs, but data has 7 classes")


def test_a_model_comes_in_by_module_factory():
    loaded = load_model(ModelSpec("torch.nn:Identity", input_shape=(5,)))
    assert loaded.num_outputs == 5


def _spec(model_file, name="small_cnn", **kw):
    return ModelSpec(f"{model_file}:{name}", **{"input_shape": (1, 8, 8), **kw})


def test_every_bad_model_input_is_a_one_line_error(model_file, tmp_path):
    load = lambda spec: load_model(spec)
    one_line_error(load, ModelSpec("no_colon", input_shape=(1, 8, 8)), match="must be 'package.module:function'")
    one_line_error(load, ModelSpec("nasq_no_such_module:f", input_shape=(1, 8, 8)), match="does not import")
    one_line_error(load, ModelSpec(f"{tmp_path}/absent.py:f", input_shape=(1, 8, 8)), match="does not exist")
    one_line_error(load, _spec(model_file, "absent"), match="has no attribute 'absent'")
    one_line_error(load, _spec(model_file, "NOT_CALLABLE"), match="not a function or class")
    one_line_error(load, _spec(model_file, "not_a_module"), match="must return a torch.nn.Module, got int")
    one_line_error(load, _spec(model_file, "broken"), match="failed: RuntimeError: the factory fails")
    one_line_error(load, _spec(model_file, input_shape=(3, 8, 8)), match=r"rejects input shape \[3, 8, 8\]")
    one_line_error(load, _spec(model_file, input_shape=()), match="input_shape must be")
    one_line_error(load, _spec(model_file, weights=str(tmp_path / "none.pt")), match="no such file")

    good = load_model(_spec(model_file)).module.state_dict()
    wrong = dict(good)
    wrong.pop("4.bias")
    wrong["extra.weight"] = torch.zeros(1)
    wrong["0.weight"] = torch.zeros(8, 1, 5, 5)
    torch.save(wrong, tmp_path / "wrong.pt")
    msg = one_line_error(load, _spec(model_file, weights=str(tmp_path / "wrong.pt")), match="do not fit the model")
    assert "missing 4.bias" in msg and "unexpected extra.weight" in msg and "0.weight [8, 1, 5, 5]" in msg

    torch.save(load_model(_spec(model_file)).module, tmp_path / "module.pt")  # a pickled module, not tensors
    one_line_error(load, _spec(model_file, weights=str(tmp_path / "module.pt")), match="refused, not unpickled")
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    one_line_error(load, _spec(model_file, weights=str(tmp_path / "junk.pt")), match="not a torch state_dict")


def _write_images(root, split, classes, per_class, size=(8, 8), mode="L"):
    from PIL import Image

    rng = np.random.default_rng(0)
    for label, cls in enumerate(classes):
        (root / split / cls).mkdir(parents=True, exist_ok=True)
        for i in range(per_class):
            shape = size[::-1] + ((3,) if mode == "RGB" else ())
            pixels = np.clip(rng.normal(40 + 150 * label, 20, shape), 0, 255).astype(np.uint8)
            Image.fromarray(pixels, mode).save(root / split / cls / f"{i}.png")


def test_an_image_folder_with_its_own_splits_or_a_seeded_split(tmp_path):
    _write_images(tmp_path, "train", ["cat", "dog"], 20)
    data = load_dataset(DataSpec("image-folder", path=str(tmp_path), val_fraction=0.2, test_fraction=0.2))
    assert data.num_classes == 2 and data.input_shape == (1, 8, 8)
    assert (len(data.train.y), len(data.val.y), len(data.test.y)) == (24, 8, 8)
    assert set(data.val.y.tolist()) == {0, 1}  # stratified
    assert abs(float(data.train.x.mean())) < 1e-5 and abs(float(data.train.x.std()) - 1) < 1e-4
    again = load_dataset(DataSpec("image-folder", path=str(tmp_path), val_fraction=0.2, test_fraction=0.2))
    assert np.array_equal(again.val.x, data.val.x)  # seeded
    _write_images(tmp_path, "test", ["cat", "dog"], 3)
    _write_images(tmp_path, "val", ["cat", "dog"], 2)
    own = load_dataset(DataSpec("image-folder", path=str(tmp_path), normalize="none"))
    assert (len(own.train.y), len(own.val.y), len(own.test.y)) == (40, 4, 6)
    assert float(own.train.x.min()) >= 0.0 and float(own.train.x.max()) <= 1.0


def test_rgb_images_normalized_per_channel_as_the_config_states(tmp_path):
    _write_images(tmp_path, "train", ["a", "b", "c"], 10, size=(6, 4), mode="RGB")
    data = load_dataset(
        DataSpec("image-folder", path=str(tmp_path), normalize="given", mean=(0.5, 0.5, 0.5), std=(0.25, 0.25, 0.25))
    )
    raw = load_dataset(DataSpec("image-folder", path=str(tmp_path), normalize="none"))
    assert data.input_shape == (3, 4, 6) and data.mean == (0.5, 0.5, 0.5)
    assert np.allclose(data.train.x, (raw.train.x - 0.5) / 0.25, atol=1e-6)


def test_bad_image_folders_are_one_line_errors(tmp_path):
    load = lambda **kw: load_dataset(DataSpec("image-folder", **kw))
    one_line_error(lambda: load(path=str(tmp_path / "absent")), match="needs a folder train/")
    (tmp_path / "empty" / "train").mkdir(parents=True)
    one_line_error(lambda: load(path=str(tmp_path / "empty")), match="no class folders")
    _write_images(tmp_path / "d", "train", ["cat", "dog"], 4)
    _write_images(tmp_path / "d", "test", ["cat", "bird"], 2)
    msg = one_line_error(lambda: load(path=str(tmp_path / "d")), match="classes differ between train/ and test/")
    assert "'dog'" in msg and "'bird'" in msg
    _write_images(tmp_path / "e", "train", ["cat", "dog"], 4)
    (tmp_path / "e" / "train" / "owl").mkdir()
    one_line_error(lambda: load(path=str(tmp_path / "e")), match="train/owl/ has no images")
    _write_images(tmp_path / "f", "train", ["cat", "dog"], 4)
    (tmp_path / "f" / "train" / "dog" / "bad.png").write_bytes(b"not a png")
    one_line_error(lambda: load(path=str(tmp_path / "f")), match="cannot read image .*bad.png")
    _write_images(tmp_path / "g", "train", ["cat"], 3)
    _write_images(tmp_path / "g", "train", ["dog"], 3, size=(9, 9))
    one_line_error(lambda: load(path=str(tmp_path / "g")), match="set data.image_size")
    resized = load(path=str(tmp_path / "g"), image_size=8)
    assert resized.input_shape == (1, 8, 8)
    one_line_error(
        lambda: load(path=str(tmp_path / "g"), image_size=8, normalize="given", mean=(0.5, 0.5)),
        match="one value per channel",
    )


def test_npz_arrays_and_their_bad_forms(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.integers(0, 256, (60, 8, 8), dtype=np.uint8), np.arange(60) % 3
    np.savez(tmp_path / "d.npz", x=x, y=y, x_test=x[:9], y_test=y[:9])
    data = load_dataset(DataSpec("npz", path=str(tmp_path / "d.npz"), normalize="none"))
    assert data.num_classes == 3 and data.input_shape == (1, 8, 8) and len(data.test.y) == 9
    assert np.allclose(data.test.x[:, 0], x[:9] / 255.0)
    load = lambda name: load_dataset(DataSpec("npz", path=str(tmp_path / name)))
    np.savez(tmp_path / "no_y.npz", x=x)
    one_line_error(load, "no_y.npz", match="needs arrays 'x' and 'y'")
    np.savez(tmp_path / "float_y.npz", x=x, y=y.astype(float))
    one_line_error(load, "float_y.npz", match="labels must be a 1-D array of integers")
    np.savez(tmp_path / "short.npz", x=x, y=y[:10])
    one_line_error(load, "short.npz", match="N x C x H x W images with N labels")
    np.savez(tmp_path / "new_class.npz", x=x, y=y % 2, x_val=x[:4], y_val=np.array([0, 1, 2, 1]))
    one_line_error(load, "new_class.npz", match="val split has classes the training split lacks")
    np.savez(tmp_path / "objects.npz", x=np.array([{"a": 1}] * 60, dtype=object), y=y)
    one_line_error(load, "objects.npz", match="not a readable .npz of arrays")
    one_line_error(load, "absent.npz", match="no such .npz file")


def test_a_python_factory_of_torch_datasets(tmp_path):
    (tmp_path / "user_data.py").write_text(
        textwrap.dedent("""
        import torch
        from torch.utils.data import TensorDataset

        def make():
            g = torch.Generator().manual_seed(0)
            x = torch.rand(40, 1, 6, 6, generator=g)
            y = torch.arange(40) % 4
            return {"train": TensorDataset(x, y), "test": TensorDataset(x[:8], y[:8])}

        def wrong():
            return 5
    """)
    )
    data = load_dataset(DataSpec("python", factory=f"{tmp_path}/user_data.py:make"))
    assert data.num_classes == 4 and data.input_shape == (1, 6, 6) and len(data.test.y) == 8
    one_line_error(
        lambda: load_dataset(DataSpec("python", factory=f"{tmp_path}/user_data.py:wrong")),
        match="must return a dict or tuple of torch datasets, got int",
    )
    one_line_error(lambda: load_dataset(DataSpec("python")), match="needs data.factory")


def test_shipped_datasets_stay_available_by_name():
    digits = load_dataset(DataSpec("digits"))
    assert digits.num_classes == 10 and digits.input_shape == (1, 8, 8)
    assert len(digits.train.y) + len(digits.val.y) + len(digits.test.y) == 1797
    mnist = load_dataset(DataSpec("mnist-5k"))
    assert mnist.input_shape == (1, 28, 28) and mnist.num_classes == 10
    one_line_error(lambda: load_dataset(DataSpec("cifar")), match="data.format 'cifar' is unknown; allowed: ")
