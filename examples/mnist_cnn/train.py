"""Train an example model on MNIST-5k and write its state_dict beside this file.

    python examples/mnist_cnn/train.py                               # writes examples/mnist_cnn/small_resnet.pt
    python examples/mnist_cnn/train.py --model small_mobilenetv2     # writes small_mobilenetv2.pt

Prints the training time and the test accuracy (the split nasq uses: seed 0, 15% validation, 15% test).
"""

import argparse
import sys
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import model as models  # noqa: E402

from nasq.data import DataSpec, load_dataset  # noqa: E402
from nasq.fileio import write_bytes_atomic  # noqa: E402
from nasq.train import predict_logits, train_steps  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", choices=("small_resnet", "small_mobilenetv2"), default="small_resnet")
    ap.add_argument("--epochs", type=float, default=12)
    ap.add_argument("--out", help="default: <model>.pt beside this file")
    args = ap.parse_args()
    args.out = args.out or str(HERE / f"{args.model}.pt")
    torch.manual_seed(0)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    data = load_dataset(DataSpec("mnist-5k"))
    model = getattr(models, args.model)()
    start = time.time()
    train_steps(model, data.train, args.epochs, batch_size=64, lr=3e-3, seed=0)
    seconds = time.time() - start
    acc = {
        name: float((predict_logits(model, split.x).argmax(1) == split.y).mean())
        for name, split in (("val", data.val), ("test", data.test))
    }
    import io

    buf = io.BytesIO()
    torch.save(model.state_dict(), buf)
    write_bytes_atomic(args.out, buf.getvalue())
    params = sum(p.numel() for p in model.parameters())
    print(
        f"{args.model}: {params} parameters, {args.epochs:g} epochs on {len(data.train.y)} MNIST-5k images in "
        f"{seconds:.0f} s ({torch.get_num_threads()} threads); validation {acc['val']:.3f}, test {acc['test']:.3f}; "
        f"wrote {args.out}"
    )


if __name__ == "__main__":
    main()
