"""Train the example model on MNIST-5k and write its state_dict beside this file.

    python examples/mnist_cnn/train.py            # writes examples/mnist_cnn/small_resnet.pt

Prints the training time and the test accuracy (the split nasq uses: seed 0, 15% validation, 15% test).
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from model import small_resnet  # noqa: E402

from nasq.data import DataSpec, load_dataset  # noqa: E402
from nasq.fileio import write_bytes_atomic  # noqa: E402
from nasq.train import predict_logits, train_steps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--out", default=str(HERE / "small_resnet.pt"))
    args = ap.parse_args()
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_dataset(DataSpec("mnist-5k"))
    model = small_resnet()
    start = time.time()
    train_steps(model, data.train, args.epochs, batch_size=64, lr=3e-3, seed=0)
    seconds = time.time() - start
    acc = {name: float((predict_logits(model, split.x).argmax(1) == split.y).mean())
           for name, split in (("val", data.val), ("test", data.test))}
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    write_bytes_atomic(args.out, buf.getvalue())
    params = sum(p.numel() for p in model.parameters())
    print(f"small_resnet: {params} parameters, {args.epochs:g} epochs on {len(data.train.y)} MNIST-5k images in "
          f"{seconds:.0f} s ({torch.get_num_threads()} threads); validation {acc['val']:.3f}, test {acc['test']:.3f}; "
          f"wrote {args.out}")


if __name__ == "__main__":
    main()
