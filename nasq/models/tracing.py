"""A user's model traced once: its compute layers in execution order, its prunable channel groups (torch-pruning's
dependency graph), the BatchNorms that fold into a conv, and the layers nasq leaves as they are.

A group is a set of channels that must be removed together: a conv's output channels with everything that reads or
adds them (its BatchNorm, the next convs' input channels, every branch summed into the same residual stream). Each
group gets one pruning ratio; how many channels of each layer it removes is recorded here, so that a candidate's
layer shapes are arithmetic, not a re-trace.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from nasq.errors import NasqError


@dataclass(frozen=True)
class TracedLayer:
    """A conv or linear layer as it ran on the example input."""

    name: str
    op: str  # conv | dwconv | linear
    cin: int
    cout: int
    kernel: int = 1
    stride: int = 1
    h_in: int = 1
    groups: int = 1


@dataclass
class ChannelGroup:
    """Channels pruned together, named after the layer whose output channels lead them."""

    name: str
    channels: int
    #: layer -> how many of its output (input) channels one channel of the group is (a flatten before a linear
    #: layer makes one channel many inputs)
    outputs: dict[str, int] = field(default_factory=dict)
    inputs: dict[str, int] = field(default_factory=dict)


@dataclass
class ModelTrace:
    layers: list[TracedLayer]
    groups: list[ChannelGroup]
    batchnorm_after: dict[str, str]  # conv name -> the BatchNorm that reads only its output (folded into it)
    unsupported: list[str]  # modules with weights that nasq neither prunes nor quantizes: "name (Type)"
    #: layer -> where its residual add's other operand enters, as :class:`nasq.spaces.base.LayerSpec`'s ``residual``
    residuals: dict[str, int] = field(default_factory=dict)
    #: conv -> the activation ("relu", "relu6") that alone reads its output (after its folded BatchNorm): an int8
    #: conv's output is quantized after it, as ONNX Runtime quantizes it
    activation_after: dict[str, str] = field(default_factory=dict)
    #: residual block -> what is left of it when its branch is removed: "relu" (``relu(x + f(x))``) or "identity"
    #: (``x + f(x)``). A block is a submodule called once, whose output has its input's shape and adds its input
    blocks: dict[str, str] = field(default_factory=dict)


SUPPORTED_WITH_WEIGHTS = ("Conv2d", "Linear", "BatchNorm2d", "BatchNorm1d")


def trace_model(module, input_shape: tuple[int, ...], *, frozen: set[str] = frozenset()) -> ModelTrace:
    """Trace ``module`` (eval mode) on one zero sample. ``frozen``: layers whose output channels are never pruned
    (the classifier is always one: its outputs are the classes)."""
    import torch

    layers = _layers_in_order(module, input_shape)
    if not layers:
        raise NasqError("the model has no Conv2d or Linear layer nasq can compress")
    classifier = layers[-1].name
    groups = _groups(module, input_shape, {classifier, *frozen}, {l.name for l in layers})
    unsupported = []
    supported = {l.name for l in layers}
    for name, m in module.named_modules():
        own = list(m.parameters(recurse=False))
        if own and name not in supported and type(m).__name__ not in SUPPORTED_WITH_WEIGHTS:
            unsupported.append(f"{name} ({type(m).__name__})")
        elif isinstance(m, torch.nn.Conv2d) and name not in supported:
            unsupported.append(f"{name} (Conv2d: {_why_not(m)})")
    graph = _fx_graph(module)
    batchnorms = _conv_batchnorms(module, graph)
    return ModelTrace(
        layers,
        groups,
        batchnorms,
        unsupported,
        _residuals(module, graph, layers),
        _activations(module, graph, batchnorms),
        _residual_blocks(module, input_shape, layers),
    )


def _residual_blocks(module, input_shape, layers: list[TracedLayer]) -> dict[str, str]:
    """The submodules whose removal leaves the model well-formed (see :attr:`ModelTrace.blocks`), outermost first."""
    import operator

    import torch
    import torch.fx

    calls: dict[str, list] = {}
    hooks = [
        m.register_forward_hook(
            lambda m, i, o, n=name: calls.setdefault(n, []).append(
                (
                    tuple(i[0].shape) if i and isinstance(i[0], torch.Tensor) else None,
                    tuple(o.shape) if isinstance(o, torch.Tensor) else None,
                )
            )
        )
        for name, m in module.named_modules()
        if name and any(True for _ in m.children())
    ]
    try:
        with torch.no_grad():
            module(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    blocks: dict[str, str] = {}
    for name, seen in calls.items():
        if len(seen) != 1 or seen[0][0] is None or seen[0][0] != seen[0][1]:
            continue
        if not any(l.name.startswith(name + ".") for l in layers) or any(name.startswith(b + ".") for b in blocks):
            continue
        sub = module.get_submodule(name)
        try:
            graph = torch.fx.symbolic_trace(sub).graph
        except Exception:
            continue
        inputs = [n for n in graph.nodes if n.op == "placeholder"]
        out = next(n for n in graph.nodes if n.op == "output").args[0]
        if len(inputs) != 1 or not isinstance(out, torch.fx.Node):
            continue
        left = "identity"
        if _is_relu(out, sub):
            left, out = "relu", out.args[0]
        is_add = (out.op == "call_function" and out.target in (operator.add, operator.iadd, torch.add)) or (
            out.op == "call_method" and out.target in ("add", "add_")
        )
        if is_add and any(_through_identity(a, sub) is inputs[0] for a in out.args[:2]):
            blocks[name] = left
    return blocks


def _is_relu(node, module) -> bool:
    import torch

    if node.op == "call_module":
        return isinstance(module.get_submodule(node.target), torch.nn.ReLU)
    return node.op in ("call_function", "call_method") and getattr(node.target, "__name__", node.target) in (
        "relu",
        "relu_",
    )


def _through_identity(node, module):
    """The node an argument comes from, past identity modules (an ``nn.Identity`` shortcut)."""
    import torch

    while (
        isinstance(node, torch.fx.Node)
        and node.op == "call_module"
        and isinstance(module.get_submodule(node.target), torch.nn.Identity)
    ):
        node = node.args[0]
    return node


def _activations(module, graph, batchnorms: dict[str, str]) -> dict[str, str]:
    """conv -> the ReLU or ReLU6 that is the only reader of its output, or of its folded BatchNorm's."""
    import torch

    if graph is None:
        return {}
    mods = dict(module.named_modules())
    folded = set(batchnorms.values())
    out = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), torch.nn.Conv2d):
            continue
        nxt = node
        if len(nxt.users) == 1 and next(iter(nxt.users)).op == "call_module" and next(iter(nxt.users)).target in folded:
            nxt = next(iter(nxt.users))
        if len(nxt.users) != 1:
            continue
        user = next(iter(nxt.users))
        kind = None
        if user.op == "call_module":
            kind = {torch.nn.ReLU: "relu", torch.nn.ReLU6: "relu6"}.get(type(mods.get(user.target)))
        elif user.op in ("call_function", "call_method"):
            kind = {"relu": "relu", "relu_": "relu", "relu6": "relu6"}.get(
                getattr(user.target, "__name__", user.target)
            )
        if kind:
            out[node.target] = kind
    return out


def _fx_graph(module):
    """The model's symbolic trace (torch.fx), or None when it does not trace (data-dependent control flow): then
    no BatchNorm is folded (ONNX Runtime folds them at load time anyway) and no residual add is priced."""
    import torch.fx

    try:
        return torch.fx.symbolic_trace(module).graph
    except Exception:
        return None


#: ops a tensor passes through on its way from a layer to an add, which do not change where it comes from
_PASS_THROUGH = ("BatchNorm2d", "ReLU", "ReLU6", "Identity", "Dropout", "Hardswish", "SiLU", "GELU")


def _residuals(module, graph, layers: list[TracedLayer]) -> dict[str, int]:
    """Each two-operand add of the graph, as the layer list prices it: on the later of the layers producing its
    operands, with ``residual`` pointing where the other operand comes from (the layer whose input it is, for an
    identity shortcut; the layer just before, for a shortcut conv beside the main branch)."""
    import operator

    import torch

    if graph is None:
        return {}
    mods = dict(module.named_modules())
    index = {l.name: i for i, l in enumerate(layers)}

    def passes(node) -> bool:
        if node.op == "call_module":
            return type(mods.get(node.target)).__name__ in _PASS_THROUGH
        return node.op in ("call_function", "call_method") and getattr(node.target, "__name__", node.target) in (
            "relu",
            "relu_",
            "relu6",
            "dropout",
            "batch_norm",
        )

    def source(node):
        while (
            isinstance(node, torch.fx.Node) and node.op != "placeholder" and node.target not in index and passes(node)
        ):
            node = node.args[0]
        return node

    def first_reader(node) -> int | None:  # the first layer (in execution order) that reads this tensor
        seen, todo, found = set(), [node], []
        while todo:
            n = todo.pop()
            for user in n.users:
                if user in seen:
                    continue
                seen.add(user)
                if user.op == "call_module" and user.target in index:
                    found.append(index[user.target])
                elif passes(user):
                    todo.append(user)
        return min(found) if found else None

    out: dict[str, int] = {}
    for node in graph.nodes:
        is_add = (node.op == "call_function" and node.target in (operator.add, operator.iadd, torch.add)) or (
            node.op == "call_method" and node.target in ("add", "add_")
        )
        if not is_add or len(node.args) < 2 or not all(isinstance(a, torch.fx.Node) for a in node.args[:2]):
            continue
        a, b = source(node.args[0]), source(node.args[1])
        ia, ib = (index.get(x.target) if x.op == "call_module" else None for x in (a, b))
        if ia is None and ib is None:
            continue
        if ia is not None and ib is not None:
            last, other = max(ia, ib), min(ia, ib)
            out[layers[last].name] = last - other
            continue
        last, skip = (ia, b) if ia is not None else (ib, a)
        start = first_reader(skip)
        if start is not None and start <= last:
            out[layers[last].name] = last - start + 1
    return out


def _why_not(conv) -> str:
    if conv.kernel_size[0] != conv.kernel_size[1] or conv.stride[0] != conv.stride[1]:
        return "non-square kernel or stride"
    if conv.dilation != (1, 1):
        return "dilated"
    if conv.groups not in (1, conv.in_channels):
        return "grouped"
    return "not run on the example input"


def compressible(m) -> bool:
    """The layers nasq prunes and quantizes: Linear, and square, undilated, dense or depthwise Conv2d."""
    import torch

    if isinstance(m, torch.nn.Linear):
        return True
    return (
        isinstance(m, torch.nn.Conv2d)
        and m.kernel_size[0] == m.kernel_size[1]
        and m.stride[0] == m.stride[1]
        and m.dilation == (1, 1)
        and m.groups in (1, m.in_channels)
        and m.padding_mode == "zeros"
    )


def _layers_in_order(module, input_shape) -> list[TracedLayer]:
    import torch

    seen: list[TracedLayer] = []
    hooks = []

    def hook(name):
        def record(m, inputs, output):
            if any(l.name == name for l in seen):  # a layer called twice is one layer here
                return
            x = inputs[0]
            if isinstance(m, torch.nn.Linear):
                seen.append(TracedLayer(name, "linear", m.in_features, m.out_features))
                return
            dw = m.groups > 1 and m.groups == m.in_channels == m.out_channels
            seen.append(
                TracedLayer(
                    name,
                    "dwconv" if dw else "conv",
                    m.in_channels,
                    m.out_channels,
                    m.kernel_size[0],
                    m.stride[0],
                    int(x.shape[-1]),
                    m.groups,
                )
            )

        return record

    for name, m in module.named_modules():
        if compressible(m):
            hooks.append(m.register_forward_hook(hook(name)))
    try:
        with torch.no_grad():
            module.eval()(torch.zeros(1, *input_shape))
    finally:
        for h in hooks:
            h.remove()
    return seen


def _groups(module, input_shape, frozen: set[str], layer_names: set[str]) -> list[ChannelGroup]:
    import torch
    import torch_pruning as tp

    names = {m: n for n, m in module.named_modules()}
    graph = tp.DependencyGraph().build_dependency(module, example_inputs=torch.zeros(1, *input_shape))
    ignored = [m for n, m in module.named_modules() if n in frozen or (n not in layer_names and compressible(m))]
    out = []
    for group in graph.get_all_groups(ignored_layers=ignored, root_module_types=[torch.nn.Conv2d, torch.nn.Linear]):
        root = names.get(group[0].dep.target.module)
        width = len(group[0].idxs)
        g = ChannelGroup(root, width)
        for item in group:
            m, handler = item.dep.target.module, item.dep.handler
            name = names.get(m)
            if name not in layer_names:
                continue
            share = max(1, len(item.idxs) // max(width, 1))
            is_out, is_in = graph.is_out_channel_pruning_fn(handler), graph.is_in_channel_pruning_fn(handler)
            depthwise = isinstance(m, torch.nn.Conv2d) and m.groups > 1
            if is_out or depthwise:
                g.outputs[name] = share
            if (is_in and not is_out) or depthwise:
                g.inputs[name] = share
        if root in layer_names and g.outputs:
            out.append(g)
    return out


def _conv_batchnorms(module, graph) -> dict[str, str]:
    """conv -> the BatchNorm2d that is the only reader of its output, in the model's symbolic trace (none without
    one)."""
    import torch
    import torch.fx

    if graph is None:
        return {}
    mods = dict(module.named_modules())
    pairs = {}
    for node in graph.nodes:
        if node.op != "call_module" or not isinstance(mods.get(node.target), torch.nn.BatchNorm2d):
            continue
        src = node.args[0] if node.args else None
        if (
            isinstance(src, torch.fx.Node)
            and src.op == "call_module"
            and isinstance(mods.get(src.target), torch.nn.Conv2d)
            and len(src.users) == 1
            and compressible(mods[src.target])
        ):
            pairs[src.target] = node.target
    # a BatchNorm module called at two places cannot be folded into one conv
    calls: dict[str, int] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    return {c: b for c, b in pairs.items() if calls.get(b) == 1 and calls.get(c) == 1}
