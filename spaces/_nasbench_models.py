"""The torch models behind :mod:`nasq.spaces.nasbench` (kept apart so the spaces import no torch).

Every conv and the classifier is a :mod:`nasq.compress` layer named as the space's ``layers()`` names
it, so that the latency predictors, the exporter and the tests see the same network.
"""

from __future__ import annotations

import torch
from torch import nn

from nasq.compress import QuantConvBNAct, QuantLinear


class _ReLUConvBN(QuantConvBNAct):
    """NAS-Bench-201's pre-activation ReLU -> Conv -> BN."""

    def __init__(self, cin: int, cout: int, kernel: int, stride: int = 1) -> None:
        super().__init__(cin, cout, kernel, stride, act=False)
        self.pre = nn.ReLU()  # a module, so that activation-pattern proxies (NASWOT) see it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(self.pre(x))


class _Zero(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * 0.0


def _nb201_op(op: str, c: int) -> nn.Module:
    if op == "none":
        return _Zero()
    if op == "skip_connect":
        return nn.Identity()
    if op == "avg_pool_3x3":
        return nn.AvgPool2d(3, 1, 1, count_include_pad=False)
    return _ReLUConvBN(c, c, int(op[-1]))


class _Cell(nn.Module):
    def __init__(self, edges: dict[tuple[int, int], str], c: int) -> None:
        super().__init__()
        for (to, frm), op in edges.items():
            self.add_module(f"edge{frm}_{to}", _nb201_op(op, c))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        nodes = [x]
        for to in (1, 2, 3):
            nodes.append(sum(getattr(self, f"edge{frm}_{to}")(nodes[frm]) for frm in range(to)))
        return nodes[-1]


class _Reduction(nn.Module):
    """NAS-Bench-201's ResNet basic block with stride 2 between stages."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.a = _ReLUConvBN(cin, cout, 3, 2)
        self.b = _ReLUConvBN(cout, cout, 3)
        self.pool = nn.AvgPool2d(2, 2, ceil_mode=True)
        self.shortcut = QuantConvBNAct(cin, cout, 1, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.b(self.a(x)) + self.shortcut(self.pool(x))


class NasBench201Net(nn.Module):
    def __init__(self, edges, channels: tuple[int, ...], cells: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = QuantConvBNAct(in_channels, channels[0], 3, act=False)
        self.stages = []
        for s, c in enumerate(channels):
            if s:
                self.add_module(f"reduce{s}", _Reduction(channels[s - 1], c))
                self.stages.append(f"reduce{s}")
            for i in range(cells):
                self.add_module(f"s{s}c{i}", _Cell(edges, c))
                self.stages.append(f"s{s}c{i}")
        self.lastact = nn.Sequential(nn.BatchNorm2d(channels[-1]), nn.ReLU())
        self.classifier = QuantLinear(channels[-1], num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for name in self.stages:
            x = getattr(self, name)(x)
        return self.classifier(self.lastact(x).mean(dim=(2, 3)))


class _FBNetBlock(nn.Module):
    def __init__(self, block: str, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.residual = stride == 1 and cin == cout and block != "skip"
        self.identity = block == "skip" and stride == 1 and cin == cout
        if block == "skip":
            if not self.identity:
                self.shortcut = QuantConvBNAct(cin, cout, 1, stride, act=False)
            return
        k, e, g = int(block[1]), int(block.split("_")[1][1:]), 2 if block.endswith("g2") else 1
        hidden = cin * e
        self.expand = QuantConvBNAct(cin, hidden, 1, groups=g)
        self.dw = QuantConvBNAct(hidden, hidden, k, stride, groups=hidden)
        self.project = QuantConvBNAct(hidden, cout, 1, groups=g, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.identity:
            return x
        if hasattr(self, "shortcut"):
            return self.shortcut(x)
        y = self.project(self.dw(self.expand(x)))
        return x + y if self.residual else y


class FBNet(nn.Module):
    def __init__(self, blocks: list[str], plan, stem: int, head: int, in_channels: int, num_classes: int) -> None:
        super().__init__()
        self.stem = QuantConvBNAct(in_channels, stem, 3)
        cin = stem
        for i, (block, (cout, stride)) in enumerate(zip(blocks, plan)):
            self.add_module(f"layer{i}", _FBNetBlock(block, cin, cout, stride))
            cin = cout
        self.n_layers = len(blocks)
        self.head = QuantConvBNAct(cin, head, 1)
        self.classifier = QuantLinear(head, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i in range(self.n_layers):
            x = getattr(self, f"layer{i}")(x)
        return self.classifier(self.head(x).mean(dim=(2, 3)))
