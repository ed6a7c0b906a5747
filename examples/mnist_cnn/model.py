"""A small ResNet for 28x28 grayscale digits: the model `make quickstart` will compress (issue 30).

The factory is what a user hands nasq: ``examples/mnist_cnn/model.py:small_resnet``.
"""

from torch import nn


class Block(nn.Module):
    """Two 3x3 convs with a shortcut (a 1x1 conv where the shape changes), as in ResNet."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()
        self.shortcut = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(y)) + self.shortcut(x))


def small_resnet(classes: int = 10, width: int = 16) -> nn.Module:
    """stem 3x3 (28x28) -> a block at 28x28, two blocks at 14x14, two at 7x7 -> pool -> linear."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU(),
        Block(w, w), Block(w, 2 * w, 2), Block(2 * w, 2 * w), Block(2 * w, 4 * w, 2), Block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, classes),
    )
