"""Experiment configs: YAML parsed at the edge into frozen, validated dataclasses.

Errors name the key, the bad value and what is allowed, e.g.
``config quickstart.yaml: search.num_candidates = 0 is below the minimum 1``.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nasq.accuracy import ZERO_COST_PROXIES
from nasq.errors import NasqError
from nasq.models.loading import LayerOverride
from nasq.options import check_value, option

SCHEDULES = ("none", "asha")


@dataclass(frozen=True)
class SearchConfig:
    sampler: str = option(
        "tpe",
        doc="a registered sampler (nasq.search.samplers): an Optuna sampler driving Ray Tune (`tpe`, `nsga2`, "
        "`random`), or `evolution`: an evolutionary search over an accuracy predictor (APQ-style)",
    )
    sampler_options: Mapping[str, Any] = field(
        default_factory=dict,
        metadata={"doc": "the sampler's own options, e.g. `{population_size: 16}` for `nsga2` (docs/extending.md)"},
    )
    num_candidates: int = option(24, min=1, max=1_000_000, doc="candidates to evaluate (Tune trials)")
    max_concurrent: int = option(2, min=1, max=10_000, doc="trials running at once")
    cpus_per_candidate: float = option(1.0, min=0.1, max=1024, doc="CPUs Ray reserves per trial (torch threads)")
    gpus_per_candidate: float = option(
        0.0, min=0.0, max=64, doc="GPUs Ray reserves per trial (a fraction shares one); training runs on it"
    )
    latency_pricing: str = option(
        "graph",
        choices=("graph", "layers"),
        doc="how each evaluated candidate's latency is priced: `graph`, its network exported "
        "for each target and priced from that graph as `nasq predict` prices the file "
        "(what `nasq best` reports too); `layers`, from its list of layers alone (the "
        "fast price that the evolution's screen and the constraints use, blind to a "
        "graph's layout reorders, residual adds and precision boundaries)",
    )
    uniform_starts: int = option(
        0,
        min=0,
        max=1000,
        doc="sampled architectures evaluated first at uniform 8-bit and at float, as anchors for the sampler",
    )
    front_variants: float = option(
        0.15,
        min=0.0,
        max=1.0,
        doc="share of num_candidates spent on the all-float and "
        "all-8-bit versions of candidates on a target's front, "
        "each evaluated next",
    )
    screen_pool: int = option(
        2000,
        min=10,
        max=1_000_000,
        doc="evolution: candidates screened with the accuracy and latency predictors after each new result",
    )
    screen_startup: int = option(
        8, min=8, max=1_000_000, doc="evolution: random candidates evaluated before the accuracy predictor is trusted"
    )
    screen_workers: int = option(
        2,
        min=0,
        max=10_000,
        doc="evolution: Ray actors that score each screened pool in batches (no CPU reserved; 0: in the driver)",
    )
    screen_every: int = option(
        1,
        min=1,
        max=1_000_000,
        doc="evolution: refit the accuracy predictor and screen a new "
        "pool after this many new results (1: after each); raise it "
        "when evaluations are cheaper than the screen (~1 s)",
    )
    screen_bounded_share: float = option(
        0.75,
        min=0.0,
        max=1.0,
        doc="evolution: share of a constrained target's "
        "turns that take the best predicted score within its bounds (APQ's rule); "
        "the rest take the largest predicted hypervolume gain",
    )
    screen_explore: float = option(
        0.25,
        min=0.0,
        max=1.0,
        doc="evolution: share of suggestions that explore: the "
        "candidate with the highest upper confidence bound on its score (a Gaussian process's "
        "mean plus two deviations), where the predictor has seen nothing alike",
    )
    screen_proxy: str = option(
        "",
        choices=("", *ZERO_COST_PROXIES),
        doc="evolution: a zero-cost proxy computed for the startup pool and each screen's "
        "shortlist (on accuracy.proxy_batch_size training samples), which picks the startup "
        "candidates and is a feature of the accuracy predictor that re-ranks the shortlist "
        "(empty: none)",
    )
    screen_proxy_pool: int = option(
        64,
        min=8,
        max=1_000_000,
        doc="evolution with screen_proxy: random candidates "
        "within the bounds whose proxy picks the screen_startup evaluated first",
    )
    screen_shortlist: int = option(
        32,
        min=2,
        max=1_000_000,
        doc="evolution with screen_proxy: candidates per target from each screened pool whose proxy is computed",
    )


@dataclass(frozen=True)
class AccuracyConfig:
    estimate: str = option("short-training", doc="registered accuracy estimate")
    train_epochs: float = option(1.0, min=0.0, max=100, doc="float epochs before pruning")
    finetune_epochs: float = option(1.0, min=0.0, max=100, doc="quantization-aware fine-tuning epochs after pruning")
    batch_size: int = option(64, min=1, max=4096)
    lr: float = option(0.01, min=0.0, max=10.0)
    finetune_lr: float = option(0.003, min=0.0, max=10.0)
    proxy_batch_size: int = option(64, min=2, max=4096, doc="real training samples a zero-cost proxy sees")
    supernet_epochs: float = option(6.0, min=0.0, max=1000, doc="supernet: float training epochs (sandwich rule)")
    supernet_qat_epochs: float = option(2.0, min=0.0, max=1000, doc="supernet: quantization-aware epochs, random bits")
    supernet_path: str = option("", doc="supernet: a checkpoint to reuse (empty: train one in the run directory)")
    bn_samples: int = option(
        1000,
        min=16,
        max=1_000_000,
        doc="supernet: training images that re-estimate a sub-network's BatchNorm statistics",
    )
    schedule: str = option(
        "none",
        choices=SCHEDULES,
        doc="fidelity schedule: `asha` scores every candidate at rising fidelities and stops the unpromising early",
    )
    rungs: int = option(
        3,
        min=2,
        max=10,
        doc="asha: fidelities per candidate; rung k trains for reduction_factor**-(rungs-1-k) of the configured epochs",
    )
    reduction_factor: float = option(3.0, min=1.5, max=100, doc="asha: one in reduction_factor goes on at each rung")
    distill_temperature: float = option(
        4.0,
        min=0.1,
        max=100,
        doc="a trained model's candidates: the temperature "
        "that softens the teacher's and the student's outputs for distillation",
    )
    distill_weight: float = option(
        0.9,
        min=0.0,
        max=1.0,
        doc="a trained model's candidates: weight of the "
        "distillation term (T^2 x KL to the original's outputs); the rest is cross-entropy",
    )


@dataclass(frozen=True)
class DataConfig:
    dataset: str = option(
        "mnist-5k",
        doc="a registered data format (nasq.data.formats): a shipped dataset (mnist-5k, digits) or a "
        "format: npz (path: arrays x, y), image-folder (path: root/train/<class>/*.png, optional "
        "val/ and test/), python (factory returning torch datasets)",
    )
    path: str = option("", doc="npz: the file; image-folder: the root folder")
    factory: str = option("", doc="python: 'package.module:function' or 'file.py:function'")
    normalize: str = option(
        "train",
        choices=("train", "none", "given"),
        doc="per channel by the training split's mean and deviation, not at all, or by mean and std",
    )
    mean: tuple[float, ...] = option((), doc="normalize: given: per-channel means")
    std: tuple[float, ...] = option((), doc="normalize: given: per-channel deviations")
    image_size: int = option(0, min=0, max=4096, doc="image-folder: resize to this square size (0: keep)")
    val_fraction: float = option(0.15, min=0.05, max=0.4)
    test_fraction: float = option(0.15, min=0.05, max=0.4)


@dataclass(frozen=True)
class ModelConfig:
    """A trained model to compress (empty factory: search ``space`` from scratch instead)."""

    factory: str = option("", doc="'package.module:function' or 'path/to/file.py:function' returning the torch model")
    weights: str = option(
        "", doc="its state_dict file (torch.save(model.state_dict(), path)), read with weights_only=True"
    )
    input_shape: tuple[int, ...] = option((), doc="one sample's shape, C x H x W")
    prune_ratios: tuple[float, ...] = option((0.0, 0.25, 0.5, 0.75), doc="each channel group's pruning choices")
    bits: tuple[int, ...] = option(
        (2, 4, 6, 8, 32),
        doc="each layer's weight and activation bit-width choices "
        "(32: float); a width that no target runs natively is left out",
    )
    layers: dict[str, LayerOverride] = field(default_factory=dict)
    remove_blocks: bool = option(
        True,
        doc="also search the removal of each residual block whose output has its "
        "input's shape (the block becomes its shortcut)",
    )


@dataclass(frozen=True)
class BestConfig:
    train_epochs: float = option(2.0, min=0.0, max=100, doc="float epochs when `nasq best` rebuilds the model")
    finetune_epochs: float = option(1.0, min=0.0, max=100)
    measure_repetitions: int = option(300, min=5, max=100_000, doc="interleaved runs per model when measuring")
    original_qat: bool = option(
        False,
        doc="trained model: also report the original quantized to int8 with "
        "quantization-aware fine-tuning (finetune_epochs, distilled), beside the "
        "post-training int8 one",
    )
    confirm: int = option(
        3,
        min=0,
        max=50,
        doc="--max-accuracy-drop: candidates faster than the one the search's "
        "accuracies pick, fine-tuned in full to check the bound (fastest first)",
    )
    confirm_margin: float = option(
        2.0,
        min=0.0,
        max=100.0,
        doc="points below the bound a candidate's search-time accuracy may be and still be confirmed",
    )


@dataclass(frozen=True)
class TargetConstraints:
    """Bounds a candidate must meet on one target to count for it (0: no bound). All three are known
    before a candidate is evaluated (predicted latency, exact size and BitOps), so candidates that meet
    no target's bounds are never trained."""

    latency_ms: float = option(0.0, min=0.0, max=1e9, doc="predicted latency on this target")
    size_bytes: float = option(0.0, min=0.0, max=1e15, doc="weights at their bit-widths")
    bitops: float = option(0.0, min=0.0, max=1e21, doc="MACs x weight bits x activation bits")

    def bounds(self) -> dict[str, float]:
        """The set bounds, by metric name."""
        return {k: v for k, v in dataclasses.asdict(self).items() if v > 0}


@dataclass(frozen=True)
class ExperimentConfig:
    name: str = option("nasq", doc="run directory prefix")
    space: str = option("mobilenet-mnist", doc="registered search space")
    targets: tuple[str, ...] = option(
        ("local-ort",),
        doc="hardware profiles (names or .json paths; local-ort: this "
        "machine's ONNX Runtime profile, measured first if there is none)",
    )
    seed: int = option(0, min=0, max=2**31 - 1)
    output_dir: str = option("runs", doc="where run directories are created")
    plugins: tuple[str, ...] = option(
        (),
        min=0,
        doc="modules (package.module or path/to/file.py) that register plugins (docs/extending.md): imported "
        "before the rest of the config is checked, and in every Ray worker",
    )
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    search: SearchConfig = field(default_factory=SearchConfig)
    accuracy: AccuracyConfig = field(default_factory=AccuracyConfig)
    best: BestConfig = field(default_factory=BestConfig)
    constraints: dict[str, TargetConstraints] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["targets"] = list(self.targets)
        return out


def _parse(cls: type, raw: Any, where: str, source: str) -> Any:
    if not isinstance(raw, dict):
        raise NasqError(f"config {source}: {where or 'top level'} must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = [k for k in raw if k not in fields]
    if unknown:
        prefix = f"{where}." if where else ""
        raise NasqError(f"config {source}: unknown key '{prefix}{unknown[0]}'; allowed: {', '.join(fields)}")
    values = {}
    for name, value in raw.items():
        key = f"{where}.{name}" if where else name
        typ, meta = hints[name], fields[name].metadata
        if isinstance(typ, type) and dataclasses.is_dataclass(typ):
            values[name] = _parse(typ, value, key, source)
            continue
        if typing.get_origin(typ) is dict:  # name -> a dataclass per entry (constraints per target)
            if not isinstance(value, dict):
                raise NasqError(f"config {source}: {key} must be a mapping, got {type(value).__name__}")
            values[name] = {str(k): _parse(typing.get_args(typ)[1], v, f"{key}.{k}", source) for k, v in value.items()}
            continue
        values[name] = check_value(key, value, typ, meta, f"config {source}")
    return cls(**values)


def config_from_dict(raw: Any, source: str = "<dict>") -> ExperimentConfig:
    cfg = _parse(ExperimentConfig, raw, "", source)
    if cfg.data.val_fraction + cfg.data.test_fraction >= 0.8:
        raise NasqError(f"config {source}: data.val_fraction + data.test_fraction must be below 0.8")
    for target, bounds in cfg.constraints.items():
        if target not in cfg.targets:
            raise NasqError(
                f"config {source}: constraints.{target}: '{target}' is not one of the targets; "
                f"allowed: {', '.join(cfg.targets)}"
            )
        if not bounds.bounds():
            raise NasqError(
                f"config {source}: constraints.{target} sets no bound; allowed: latency_ms, size_bytes, "
                "bitops (each above 0)"
            )
    if cfg.model.factory:
        if "space" in raw and raw["space"] != "from-model":
            raise NasqError(
                f"config {source}: a model block searches the model's own space; space = "
                f"{raw['space']!r} not allowed with it; allowed: from-model (or leave space out)"
            )
        if not cfg.model.input_shape:
            raise NasqError(f"config {source}: model.input_shape is missing; give one sample's shape, e.g. [1, 28, 28]")
        cfg = dataclasses.replace(cfg, space="from-model")
    elif cfg.space == "from-model":
        raise NasqError(
            f"config {source}: space 'from-model' needs a model block (model.factory, model.weights, model.input_shape)"
        )
    elif cfg.model != ModelConfig():
        raise NasqError(f"config {source}: model.* is set but model.factory is empty; name the model's factory")
    from nasq.data.formats import DATA_FORMATS
    from nasq.search.samplers import SAMPLERS
    from nasq.user_code import load_module

    for ref in cfg.plugins:
        load_module(ref, f"config {source}: plugins entry {ref!r}")
    if cfg.data.dataset not in DATA_FORMATS:
        raise NasqError(
            f"config {source}: data.dataset = {cfg.data.dataset!r} not allowed; allowed: "
            f"{', '.join(DATA_FORMATS.names())}"
        )
    if cfg.search.sampler not in SAMPLERS:
        raise NasqError(
            f"config {source}: search.sampler = {cfg.search.sampler!r} not allowed; allowed: "
            f"{', '.join(SAMPLERS.names())}"
        )
    sampler = SAMPLERS.get(cfg.search.sampler)
    options = sampler.Options.from_mapping(cfg.search.sampler_options, f"config {source}: search.sampler_options")
    cfg = dataclasses.replace(cfg, search=dataclasses.replace(cfg.search, sampler_options=dataclasses.asdict(options)))
    if cfg.search.screen_proxy and not sampler.capabilities.screens:
        raise NasqError(
            f"config {source}: search.screen_proxy = {cfg.search.screen_proxy!r} needs search.sampler: "
            f"evolution (got {cfg.search.sampler!r}); allowed with other samplers: '' (none)"
        )
    return cfg


def load_config(path: str | Path) -> ExperimentConfig:
    """Parse and validate a YAML config; NasqError names any problem (file, YAML, key, value)."""
    import yaml

    from nasq.fileio import read_text

    path = Path(path)
    text = read_text(path, "config")
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        at = f" at line {mark.line + 1}" if mark else ""
        raise NasqError(f"config {path} is not valid YAML{at}") from None
    return config_from_dict(raw if raw is not None else {}, path.name)


def check_references(cfg: ExperimentConfig) -> None:
    """Check that the named space, estimate and targets exist (loads the profiles)."""
    from nasq.accuracy import ESTIMATES
    from nasq.hardware_profiles import load_profile
    from nasq.hardware_profiles.local import LOCAL_ORT, check_local_target
    from nasq.spaces import SPACES

    if cfg.space not in SPACES:
        raise NasqError(f"config: unknown space '{cfg.space}'; available: {', '.join(SPACES.names())}")
    if cfg.accuracy.estimate not in ESTIMATES:
        raise NasqError(
            f"config: unknown accuracy.estimate '{cfg.accuracy.estimate}'; available: {', '.join(ESTIMATES.names())}"
        )
    estimate = ESTIMATES.get(cfg.accuracy.estimate)
    if cfg.accuracy.schedule != "none" and not estimate.fidelity_keys:
        with_fidelity = [n for n in ESTIMATES.names() if ESTIMATES.get(n).fidelity_keys]
        raise NasqError(
            f"config: accuracy.schedule '{cfg.accuracy.schedule}' needs an estimate with a fidelity "
            f"(training time); '{cfg.accuracy.estimate}' has none; allowed: {', '.join(with_fidelity)}"
        )
    for target in cfg.targets:
        if target == LOCAL_ORT:  # found or measured when the search starts; here only whether it can be
            check_local_target(cfg.space)
        else:
            load_profile(target)
