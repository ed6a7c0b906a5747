"""A MobileNetV2-style space for 28x28 single-channel input (MNIST).

stem: 3x3 conv, stride 2, 16 channels (28 -> 14)
3 stages (base widths 16, 32, 48; strides 1, 2, 2; so 14 -> 14 -> 7 -> 4), each with
  depth in {1, 2, 3}, width multiplier in {0.5, 0.75, 1.0}, expansion in {2, 4, 6}, kernel in {3, 5};
  every block is expand 1x1 -> depthwise kxk -> project 1x1, residual when shape allows;
  each block's expand layer has a pruning ratio in {0, 0.25, 0.5} (its hidden channels).
global average pool -> linear classifier.
Every conv and the classifier has a weight and an input-activation bit-width in {2, 4, 6, 8, 32}.
"""

from __future__ import annotations

from typing import Any

from nasq.compress import BIT_CHOICES, kept_channels
from nasq.spaces import SPACES
from nasq.spaces.base import Candidate, LayerSpec, SearchSpace, Suggester

STEM_CHANNELS = 16
STAGE_BASE_WIDTHS = (16, 32, 48)
STAGE_STRIDES = (1, 2, 2)
DEPTHS = (1, 2, 3)
WIDTHS = (0.5, 0.75, 1.0)
EXPANSIONS = (2, 4, 6)
KERNELS = (3, 5)
PRUNE_RATIOS = (0.0, 0.25, 0.5)


def _stage_channels(stage: int, width: float) -> int:
    return max(4, int(round(STAGE_BASE_WIDTHS[stage] * width / 4)) * 4)


@SPACES.register("mobilenet-mnist")
class MobileNetMnistSpace(SearchSpace):
    name = "mobilenet-mnist"
    input_shape = (1, 28, 28)
    num_classes = 10

    def define(self, trial: Suggester) -> None:
        self._bits(trial, "stem")
        for s in range(len(STAGE_BASE_WIDTHS)):
            depth = trial.suggest_categorical(f"s{s}.depth", DEPTHS)
            trial.suggest_categorical(f"s{s}.width", WIDTHS)
            trial.suggest_categorical(f"s{s}.expansion", EXPANSIONS)
            trial.suggest_categorical(f"s{s}.kernel", KERNELS)
            for b in range(depth):
                block = f"blocks.s{s}b{b}"
                trial.suggest_categorical(f"{block}.expand.prune", PRUNE_RATIOS)
                for layer in ("expand", "dw", "project"):
                    self._bits(trial, f"{block}.{layer}")
        self._bits(trial, "classifier")

    @staticmethod
    def _bits(trial: Suggester, layer: str) -> None:
        trial.suggest_categorical(f"{layer}.w_bits", BIT_CHOICES)
        trial.suggest_categorical(f"{layer}.a_bits", BIT_CHOICES)

    def _blocks(self, candidate: Candidate) -> list[dict[str, Any]]:
        """Unpruned block plan: name, cin, cout, hidden, kernel, stride, h_in."""
        blocks, cin, h = [], STEM_CHANNELS, 14
        for s, stride in enumerate(STAGE_STRIDES):
            cout = _stage_channels(s, candidate[f"s{s}.width"])
            for b in range(candidate[f"s{s}.depth"]):
                st = stride if b == 0 else 1
                blocks.append(
                    dict(
                        name=f"s{s}b{b}",
                        cin=cin,
                        cout=cout,
                        hidden=cin * candidate[f"s{s}.expansion"],
                        kernel=candidate[f"s{s}.kernel"],
                        stride=st,
                        h_in=h,
                    )
                )
                cin, h = cout, (h + 2 * (candidate[f"s{s}.kernel"] // 2) - candidate[f"s{s}.kernel"]) // st + 1
        return blocks

    def build(self, candidate: Candidate):
        from nasq.spaces._mobilenet_model import MobileNet

        return MobileNet(STEM_CHANNELS, self._blocks(candidate), self.num_classes)

    def build_pruned(self, candidate: Candidate):
        from nasq.spaces._mobilenet_model import MobileNet

        blocks = [
            {**b, "hidden": kept_channels(b["hidden"], candidate[f"blocks.{b['name']}.expand.prune"])}
            for b in self._blocks(candidate)
        ]
        return MobileNet(STEM_CHANNELS, blocks, self.num_classes)

    def layers(self, candidate: Candidate) -> list[LayerSpec]:
        def bits(layer: str) -> dict[str, int]:
            return dict(w_bits=candidate[f"{layer}.w_bits"], a_bits=candidate[f"{layer}.a_bits"])

        specs = [LayerSpec("stem", "conv", 1, STEM_CHANNELS, 3, 2, 28, **bits("stem"))]
        cout = STEM_CHANNELS
        for blk in self._blocks(candidate):
            name = f"blocks.{blk['name']}"
            hidden = kept_channels(blk["hidden"], candidate[f"{name}.expand.prune"])
            k, st, h = blk["kernel"], blk["stride"], blk["h_in"]
            specs.append(LayerSpec(f"{name}.expand", "conv", blk["cin"], hidden, 1, 1, h, **bits(f"{name}.expand")))
            dw = LayerSpec(f"{name}.dw", "dwconv", hidden, hidden, k, st, h, **bits(f"{name}.dw"))
            specs.append(dw)
            residual = 3 if st == 1 and blk["cin"] == blk["cout"] else 0
            specs.append(
                LayerSpec(
                    f"{name}.project",
                    "conv",
                    hidden,
                    blk["cout"],
                    1,
                    1,
                    dw.h_out,
                    **bits(f"{name}.project"),
                    residual=residual,
                )
            )
            cout = blk["cout"]
        specs.append(LayerSpec("classifier", "linear", cout, self.num_classes, **bits("classifier")))
        return specs

    def profile_shapes(self, *, quick: bool = False) -> list[LayerSpec]:
        max_hidden = STAGE_BASE_WIDTHS[-1] * EXPANSIONS[-1]
        # depthwise channel counts in every alignment class the runtimes distinguish (see
        # nasq.hardware_profiles.predictors.DW_ALIGNMENT): multiples of 16, other multiples of 8, other
        # multiples of 4, and counts that are not multiples of 4
        if quick:
            pw_channels = [8, 48, 144, max_hidden]
            dw_channels = [8, 12, 64, 72, 140, max_hidden]
        else:
            pw_channels = [8, 16, 32, 48, 96, 144, 192, max_hidden]
            dw_channels = [8, 12, 16, 24, 32, 36, 64, 72, 108, 128, 136, 192, 200, 276, max_hidden]
        shapes = [LayerSpec("", "conv", 1, STEM_CHANNELS, 3, 2, 28)]
        for h in (14, 7, 4):
            shapes += [LayerSpec("", "conv", ci, co, 1, 1, h) for ci in pw_channels for co in pw_channels]
        dw_unaligned = [10, 66, max_hidden - 2] if quick else [10, 18, 34, 66, 130, 194, max_hidden - 2]
        for k in KERNELS:
            for stride, h in ((1, 14), (2, 14), (1, 7), (2, 7), (1, 4)):
                shapes += [LayerSpec("", "dwconv", c, c, k, stride, h) for c in dw_channels + dw_unaligned]
        shapes += [LayerSpec("", "linear", c, self.num_classes) for c in (8, 16, 24, 32, 48)]
        return shapes
