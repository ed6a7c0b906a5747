"""The torch model behind :mod:`nasq.spaces.mobilenet` (kept apart so the space imports no torch)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from nasq.compress import QuantConvBNAct, QuantLinear


class InvertedResidual(nn.Module):
    def __init__(self, cin: int, cout: int, hidden: int, kernel: int, stride: int) -> None:
        super().__init__()
        self.expand = QuantConvBNAct(cin, hidden, 1)
        self.dw = QuantConvBNAct(hidden, hidden, kernel, stride, groups=hidden)
        self.project = QuantConvBNAct(hidden, cout, 1, act=False)
        self.residual = stride == 1 and cin == cout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class MobileNet(nn.Module):
    def __init__(self, stem_channels: int, blocks: list[dict[str, Any]], num_classes: int) -> None:
        super().__init__()
        self.stem = QuantConvBNAct(1, stem_channels, 3, 2)
        self.blocks = nn.ModuleDict(
            {b["name"]: InvertedResidual(b["cin"], b["cout"], b["hidden"], b["kernel"], b["stride"]) for b in blocks}
        )
        self.classifier = QuantLinear(blocks[-1]["cout"], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for block in self.blocks.values():
            x = block(x)
        return self.classifier(x.mean(dim=(2, 3)))
