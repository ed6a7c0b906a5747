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
        nn.Conv2d(1, w, 3, 1, 1, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU(),
        Block(w, w),
        Block(w, 2 * w, 2),
        Block(2 * w, 2 * w),
        Block(2 * w, 4 * w, 2),
        Block(4 * w, 4 * w),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(4 * w, classes),
    )


def resnet18(classes: int = 1000, in_channels: int = 3) -> nn.Module:
    """ResNet-18 (He et al. 2016) from the same blocks: a 7x7 stem and a max pool, two blocks in each of four stages
    of 64, 128, 256 and 512 channels. Untrained here; the latency-pricing benchmark prices its candidates."""
    stages = [nn.Conv2d(in_channels, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(), nn.MaxPool2d(3, 2, 1)]
    cin = 64
    for i, cout in enumerate((64, 128, 256, 512)):
        stages += [Block(cin, cout, 1 if i == 0 else 2), Block(cout, cout)]
        cin = cout
    return nn.Sequential(*stages, nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(512, classes))


class InvertedResidual(nn.Module):
    """MobileNetV2's block: 1x1 expansion, 3x3 depthwise, 1x1 linear projection; the input added back where the shape
    stays (Sandler et al. 2018)."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        mid = cin * expand
        self.body = nn.Sequential(
            nn.Conv2d(cin, mid, 1, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(),
            nn.Conv2d(mid, mid, 3, stride, 1, groups=mid, bias=False),
            nn.BatchNorm2d(mid),
            nn.ReLU6(),
            nn.Conv2d(mid, cout, 1, bias=False),
            nn.BatchNorm2d(cout),
        )
        self.residual = stride == 1 and cin == cout

    def forward(self, x):
        return x + self.body(x) if self.residual else self.body(x)


def small_mobilenetv2(classes: int = 10, width: int = 16, expand: int = 4) -> nn.Module:
    """stem 3x3 (28x28) -> inverted residuals at 28, 14 (two) and 7 (two) -> 1x1 head -> pool -> linear."""
    w = width
    return nn.Sequential(
        nn.Conv2d(1, w, 3, 1, 1, bias=False),
        nn.BatchNorm2d(w),
        nn.ReLU6(),
        InvertedResidual(w, w, 1, expand),
        InvertedResidual(w, 2 * w, 2, expand),
        InvertedResidual(2 * w, 2 * w, 1, expand),
        InvertedResidual(2 * w, 3 * w, 2, expand),
        InvertedResidual(3 * w, 3 * w, 1, expand),
        nn.Conv2d(3 * w, 8 * w, 1, bias=False),
        nn.BatchNorm2d(8 * w),
        nn.ReLU6(),
        nn.AdaptiveAvgPool2d(1),
        nn.Flatten(),
        nn.Linear(8 * w, classes),
    )
