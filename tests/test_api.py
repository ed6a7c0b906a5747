"""The Python way in: a trained module and arrays handed to nasq.compress, the best model per target exported."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

import nasq
from nasq.errors import NasqError

pytestmark = pytest.mark.slow


class TinyNet(nn.Module):
    """Defined here, in the test's own module: Ray ships its code to the workers with the module itself."""

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, width, 3, padding=1),
            nn.BatchNorm2d(width),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 3, stride=2, padding=1),
            nn.BatchNorm2d(2 * width),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.fc = nn.Linear(2 * width * 16, 10)

    def forward(self, x):
        return self.fc(self.features(x))


def digits():
    from sklearn.datasets import load_digits

    d = load_digits()
    x = (d.images[:, None] / 16.0).astype(np.float32)
    return x[:1200], d.target[:1200], x[1200:1500], d.target[1200:1500], x[1500:], d.target[1500:]


def trained(x, y) -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet()
    opt = torch.optim.Adam(model.parameters(), 3e-3)
    for epoch in range(6):
        order = np.random.default_rng(epoch).permutation(len(x))
        for i in range(0, len(x), 32):
            batch = order[i : i + 32]
            opt.zero_grad()
            nn.functional.cross_entropy(model(torch.from_numpy(x[batch])), torch.from_numpy(y[batch])).backward()
            opt.step()
    return model.eval()


def test_a_module_and_arrays_compressed_in_python_and_the_best_model_exported(tmp_path):
    x, y, xv, yv, xt, yt = digits()
    model = trained(x, y)
    with torch.no_grad():
        original = float((model(torch.from_numpy(xt)).argmax(1).numpy() == yt).mean())
    assert original > 0.85
    result = nasq.compress_model(
        model,
        torch.zeros(1, 1, 8, 8),
        train=(x, y),
        val=(xv, yv),
        test=torch.utils.data.TensorDataset(torch.from_numpy(xt), torch.from_numpy(yt)),
        targets=["bitserial-sim"],
        layers={"fc": {"quantize": False}},
        config={
            "search": {"sampler": "random", "num_candidates": 2, "max_concurrent": 2},
            "accuracy": {"finetune_epochs": 0.3},
            "best": {"finetune_epochs": 0.3},
        },
        run_dir=tmp_path / "run",
    )
    import ray

    assert not ray.is_initialized()  # the local Ray the search started in this process is shut down
    rows = result.rows()
    assert len(rows) == 2 and all(r["status"] == "ok" for r in rows), [r["reason"] for r in rows]
    assert min(r["accuracy"] for r in rows) > 0.8  # from the trained weights, not from scratch
    best = result.best("bitserial-sim", max_accuracy_drop=5.0, log=lambda m: None)
    # faster candidates fine-tuned in full to check the bound first: the first one that meets it is the one chosen
    met = [c["cid"] for c in best.report["confirmed"] if c["met"]]
    assert met == [] or (met == [best.report["confirmed"][-1]["cid"]] and best.report["cid"] == met[0])
    exported = best.export(tmp_path / "mine.onnx")
    from nasq.ort import session

    logits = session(exported).run(None, {"input": xt})[0]
    assert (logits.argmax(1) == yt).mean() == pytest.approx(
        best.report["models"]["candidate"]["test_accuracy_onnxruntime"]
    )
    original_in_report = best.report["models"]["original"]["test_accuracy_onnxruntime"]
    assert original_in_report == pytest.approx(original, abs=0.01)  # the module as handed over, exported
    assert "| original (float) |" in best.summary() or "original" in best.summary()
    # the run names the model by its class; the command line cannot rebuild it, and says so in one line
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "nasq.cli",
            "best",
            str(result.run_dir),
            "--target",
            "bitserial-sim",
            "--out",
            str(tmp_path / "cli"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 2 and "TinyNet was handed to nasq in Python" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1 and not (tmp_path / "cli").exists()


def test_bad_python_inputs_are_one_line_errors_and_leave_nothing(tmp_path):
    x, y, xv, yv, *_ = digits()
    model = TinyNet()
    with pytest.raises(NasqError, match="train: 1200 samples but 5 labels"):
        nasq.compress_model(
            model,
            torch.zeros(1, 1, 8, 8),
            train=(x, y[:5]),
            val=(xv, yv),
            targets=["bitserial-sim"],
            run_dir=tmp_path / "a",
        )
    with pytest.raises(NasqError, match="gives 10 outputs, but data npz has 3 classes"):
        nasq.compress_model(
            model,
            torch.zeros(1, 1, 8, 8),
            train=(x, y % 3),
            val=(xv, yv % 3),
            targets=["bitserial-sim"],
            run_dir=tmp_path / "b",
        )
    with pytest.raises(NasqError, match="model must be a torch nn.Module or a factory reference"):
        nasq.compress_model(42, torch.zeros(1, 1, 8, 8), train=(x, y), val=(xv, yv), targets=["bitserial-sim"])
    assert list(tmp_path.iterdir()) == []
