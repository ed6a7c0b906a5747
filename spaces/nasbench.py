"""The architecture spaces of two public latency benchmarks, so their published measurements become targets.

``nas-bench-201``: NAS-Bench-201's cell space (Dong & Yang, ICLR 2020). One cell, repeated 5 times in
each of 3 stages (16, 32, 64 channels, ResNet reduction blocks between them), is a 4-node DAG whose 6
edges each take one of ``none``, ``skip_connect``, ``nor_conv_1x1``, ``nor_conv_3x3``, ``avg_pool_3x3``:
15,625 architectures. Its usual string ``|op~0|+|op~0|op~1|+|op~0|op~1|op~2|`` is :meth:`parse_arch`'s input.

``fbnet``: FBNet's layer-wise space (Wu et al., CVPR 2019) as HW-NAS-Bench uses it for CIFAR: 22
searchable layers, each one of 9 blocks (``k{3,5}_e{1,3,6}`` inverted residuals, ``k{3,5}_e1_g2`` with
grouped 1x1 convs, ``skip``); the string is the 22 block names separated by spaces.

``nas-bench-macro``: NAS-Bench-Macro's MobileNetV2-block space (Su et al., CVPR 2021; 6,561 networks with
CIFAR-10 accuracies), described as a smaller FBNet-style plan (see :class:`NasBenchMacroSpace`).

These spaces search architecture only (the published tables measured float networks, unpruned). Their
published latencies are for the benchmarks' own setting (3x32x32 CIFAR input); the models :meth:`build`
makes take this project's input shape, so that they can be trained on the data nasq ships.
"""

from __future__ import annotations

from nasq.errors import NasqError
from nasq.spaces import SPACES
from nasq.spaces.base import Candidate, LayerSpec, SearchSpace, Suggester

NB201_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")
NB201_EDGES = ((1, 0), (2, 0), (2, 1), (3, 0), (3, 1), (3, 2))  # (to node, from node), in the string's order
NB201_CHANNELS, NB201_CELLS = (16, 32, 64), 5
#: the cell's input-to-output paths, as their edges (to node, from node)
NB201_PATHS = (((3, 0),), ((1, 0), (3, 1)), ((2, 0), (3, 2)), ((1, 0), (2, 1), (3, 2)))

FBNET_BLOCKS = ("k3_e1", "k3_e1_g2", "k3_e3", "k3_e6", "k5_e1", "k5_e1_g2", "k5_e3", "k5_e6", "skip")
#: (output channels, stride) of the 22 searchable layers; strides adapted to 32x32 input as HW-NAS-Bench does
FBNET_LAYERS = (
    ((16, 1),)
    + ((24, 1),) * 4
    + ((32, 2),)
    + ((32, 1),) * 3
    + ((64, 2),)
    + ((64, 1),) * 3
    + ((112, 1),) * 4
    + ((184, 2),)
    + ((184, 1),) * 3
    + ((352, 1),)
)
FBNET_STEM, FBNET_HEAD = 16, 1504
MACRO_BLOCKS = ("skip", "k3_e3", "k5_e6")


def _edge(to: int, frm: int) -> str:
    return f"edge{frm}_{to}"


class _ArchitectureOnly(SearchSpace):
    """Spaces without per-layer pruning or bit-width choices: compression does nothing."""

    def compress(self, model, candidate: Candidate) -> None:
        pass

    def quantize(self, model, candidate: Candidate) -> None:
        pass


@SPACES.register("nas-bench-201")
class NasBench201Space(_ArchitectureOnly):
    name = "nas-bench-201"
    input_shape = (1, 28, 28)
    num_classes = 10

    def define(self, trial: Suggester) -> None:
        for to, frm in NB201_EDGES:
            trial.suggest_categorical(_edge(to, frm), NB201_OPS)

    def parse_arch(self, text: str) -> Candidate:
        nodes = text.strip().strip("|").split("|+|")
        ops = [e.split("~") for node in nodes for e in node.split("|")]
        if len(nodes) != 3 or len(ops) != len(NB201_EDGES) or any(len(o) != 2 for o in ops):
            raise NasqError(f"'{text}' is not a NAS-Bench-201 string like |op~0|+|op~0|op~1|+|op~0|op~1|op~2|")
        cand = {_edge(to, frm): op for (to, frm), (op, _) in zip(NB201_EDGES, ops)}
        return self.validate(cand)

    def format_arch(self, candidate: Candidate) -> str:
        parts = []
        for to in (1, 2, 3):
            parts.append("|".join(f"{candidate[_edge(to, frm)]}~{frm}" for frm in range(to)))
        return "|" + "|+|".join(parts) + "|"

    def features(self, candidate: Candidate) -> dict[str, float]:
        """What the cell computes: only paths from input to output without a ``none`` edge (live paths) reach
        the output, so a convolution off every live path is dead weight, and the deepest live path sets the
        cell's depth. Per operation, the live paths through it and its edges on some live path; the live
        paths, and the most convolutions (and 3x3 convolutions) on one of them."""
        paths = [[candidate[_edge(to, frm)] for to, frm in path] for path in NB201_PATHS]
        live = [(path, ops) for path, ops in zip(NB201_PATHS, paths) if "none" not in ops]
        live_edges = {edge for path, _ in live for edge in path}
        out = {"live_paths": float(len(live))}
        for op in NB201_OPS[1:]:
            out[f"live_paths_with_{op}"] = float(sum(op in ops for _, ops in live))
            out[f"live_edges_{op}"] = float(sum(candidate[_edge(to, frm)] == op for to, frm in live_edges))
        out["live_depth_conv"] = float(max((sum(o.startswith("nor_conv") for o in ops) for _, ops in live), default=-1))
        out["live_depth_conv_3x3"] = float(max((ops.count("nor_conv_3x3") for _, ops in live), default=-1))
        return out

    def build(self, candidate: Candidate):
        from nasq.spaces._nasbench_models import NasBench201Net

        edges = {(to, frm): candidate[_edge(to, frm)] for to, frm in NB201_EDGES}
        return NasBench201Net(edges, NB201_CHANNELS, NB201_CELLS, self.input_shape[0], self.num_classes)

    def layers(self, candidate: Candidate) -> list[LayerSpec]:
        h = self.input_shape[1]
        specs = [LayerSpec("stem", "conv", self.input_shape[0], NB201_CHANNELS[0], 3, 1, h)]
        for s, c in enumerate(NB201_CHANNELS):
            if s:
                cin = NB201_CHANNELS[s - 1]
                specs += [
                    LayerSpec(f"reduce{s}.a", "conv", cin, c, 3, 2, h),
                    LayerSpec(f"reduce{s}.b", "conv", c, c, 3, 1, (h + 1) // 2),
                    LayerSpec(f"reduce{s}.shortcut", "conv", cin, c, 1, 1, (h + 1) // 2),
                ]
                h = (h + 1) // 2
            for i in range(NB201_CELLS):
                for to, frm in NB201_EDGES:
                    op = candidate[_edge(to, frm)]
                    if op.startswith("nor_conv"):
                        specs.append(LayerSpec(f"s{s}c{i}.{_edge(to, frm)}", "conv", c, c, int(op[-1]), 1, h))
        specs.append(LayerSpec("classifier", "linear", NB201_CHANNELS[-1], self.num_classes))
        return specs

    def profile_shapes(self, *, quick: bool = False) -> list[LayerSpec]:
        cand = {_edge(to, frm): "nor_conv_3x3" for to, frm in NB201_EDGES}
        shapes = {s.shape_only() for s in self.layers(cand)}
        cand = {k: "nor_conv_1x1" for k in cand}
        shapes |= {s.shape_only() for s in self.layers(cand)}
        return sorted(shapes, key=lambda s: (s.op, s.h_in, s.cin, s.cout, s.kernel, s.stride))


@SPACES.register("fbnet")
class FBNetSpace(_ArchitectureOnly):
    name = "fbnet"
    input_shape = (1, 28, 28)
    num_classes = 10
    blocks: tuple[str, ...] = FBNET_BLOCKS
    plan: tuple[tuple[int, int], ...] = FBNET_LAYERS
    stem, head = FBNET_STEM, FBNET_HEAD

    def define(self, trial: Suggester) -> None:
        for i in range(len(self.plan)):
            trial.suggest_categorical(f"layer{i}", self.blocks)

    def parse_arch(self, text: str) -> Candidate:
        blocks = text.split()
        if len(blocks) != len(self.plan):
            raise NasqError(
                f"an FBNet architecture is {len(self.plan)} block names separated by spaces, "
                f"got {len(blocks)} in '{text}'"
            )
        return self.validate({f"layer{i}": b for i, b in enumerate(blocks)})

    def format_arch(self, candidate: Candidate) -> str:
        return " ".join(candidate[f"layer{i}"] for i in range(len(self.plan)))

    def build(self, candidate: Candidate):
        from nasq.spaces._nasbench_models import FBNet

        blocks = [candidate[f"layer{i}"] for i in range(len(self.plan))]
        return FBNet(blocks, self.plan, self.stem, self.head, self.input_shape[0], self.num_classes)

    def layers(self, candidate: Candidate) -> list[LayerSpec]:
        """Grouped 1x1 convs (``_g2``) are described as dense convs with the same MACs (cin / 2)."""
        h = self.input_shape[1]
        specs, cin = [LayerSpec("stem", "conv", self.input_shape[0], self.stem, 3, 1, h)], self.stem
        for i, (cout, stride) in enumerate(self.plan):
            block, name = candidate[f"layer{i}"], f"layer{i}"
            if block == "skip":
                if cin != cout or stride != 1:
                    specs.append(LayerSpec(f"{name}.shortcut", "conv", cin, cout, 1, stride, h))
            else:
                k, e, groups = int(block[1]), int(block.split("_")[1][1:]), 2 if block.endswith("g2") else 1
                hidden = cin * e
                specs += [
                    LayerSpec(f"{name}.expand", "conv", cin // groups, hidden, 1, 1, h),
                    LayerSpec(f"{name}.dw", "dwconv", hidden, hidden, k, stride, h),
                ]
                specs.append(
                    LayerSpec(
                        f"{name}.project",
                        "conv",
                        hidden // groups,
                        cout,
                        1,
                        1,
                        specs[-1].h_out,
                        residual=3 if stride == 1 and cin == cout else 0,
                    )
                )
            h = (h + stride - 1) // stride
            cin = cout
        specs += [
            LayerSpec("head", "conv", cin, self.head, 1, 1, h),
            LayerSpec("classifier", "linear", self.head, self.num_classes),
        ]
        return specs

    def profile_shapes(self, *, quick: bool = False) -> list[LayerSpec]:
        shapes: set[LayerSpec] = set()
        for block in self.blocks:
            shapes |= {s.shape_only() for s in self.layers({f"layer{i}": block for i in range(len(self.plan))})}
        return sorted(shapes, key=lambda s: (s.op, s.h_in, s.cin, s.cout, s.kernel, s.stride))


@SPACES.register("nas-bench-macro")
class NasBenchMacroSpace(FBNetSpace):
    """NAS-Bench-Macro (Su et al., 2021): 8 searchable layers in stages of 2, 3 and 3 (64, 128, 256
    channels, each stage's first layer at stride 2) after a 32-channel 3x3 stem on 3x32x32 input, a
    1280-channel 1x1 head; each layer an identity (a strided 1x1 conv where it must change shape), an
    MBConv k3 e3 or an MBConv k5 e6. Its table's keys are 8 digits over (identity, k3 e3, k5 e6); the
    networks built here match its published parameter and FLOP counts exactly."""

    name = "nas-bench-macro"
    input_shape = (3, 32, 32)
    blocks = MACRO_BLOCKS
    plan = ((64, 2), (64, 1), (128, 2), (128, 1), (128, 1), (256, 2), (256, 1), (256, 1))
    stem, head = 32, 1280

    def parse_arch(self, text: str) -> Candidate:
        text = text.strip()
        if len(text) != len(self.plan) or any(ch not in "012" for ch in text):
            raise NasqError(
                f"a NAS-Bench-Macro architecture is {len(self.plan)} digits over 0 (identity), "
                f"1 (MBConv k3 e3), 2 (MBConv k5 e6); got '{text}'"
            )
        return self.validate({f"layer{i}": self.blocks[int(ch)] for i, ch in enumerate(text)})

    def format_arch(self, candidate: Candidate) -> str:
        return "".join(str(self.blocks.index(candidate[f"layer{i}"])) for i in range(len(self.plan)))
