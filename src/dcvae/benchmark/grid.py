"""A benchmark grid from a TOML file: models × datasets × protocol × classes × seeds × settings.

The file (see ``benchmarks/paper.toml``)::

    name = "paper"                      # names the results; free text
    scores = ["recon", "typical-elbo"]  # every run records each (dcvae.scoring.family); the first
                                        # is the headline
    save_models = "first-seed"          # "none" | "first-seed" | "all": detectors kept for the report
    save_scores = false                 # true: every run's per-sample scores in OUT/scores/KEY.npz
    chosen_on = ["mnist", "fmnist"]     # optional: the datasets whose validation AUC chose the
                                        # settings (the report says the others only test them)

    [defaults]                          # detector and training settings of every run
    epochs = 3
    batch_size = 64
    lr = 1e-5

    [models.dcvae]                      # one model's own settings (hyper-parameters, or training
    beta = 3.0                          # settings that differ for it); they win over [defaults];
    scores = ["recon", "elbo"]          # optional: its own scores (default: the top-level scores
                                        # it offers, or its own default score)

    [[grid]]                            # any number of blocks; the runs are their union
    datasets = ["mnist", "fmnist"]
    protocol = "leave-one-out"
    classes = "all"                     # or a list of class indices
    seeds = [0, 1]
    models = ["vae", "dcvae"]
    settings = { train_size = 2000 }    # optional: this block's own overrides, applied last

A block with ``protocol = "factors"`` measures disentanglement instead of detection, on a dataset
with known factors (``dsprites``): each VAE trains on every class (the condition of the conditional
models is the class, dSprites' shape), and its record holds the metrics of ``dcvae.disentanglement``
per measurement set (``dcvae.evaluation.run.RunRecord.disentanglement``). Such a block takes no
``classes`` (none is held out), and its ``settings`` may set ``eval_size``, the test images
measured (a seeded subsample, the same for every run)::

    [[grid]]
    datasets = ["dsprites"]
    protocol = "factors"
    seeds = [0, 1]
    models = ["vae", "dcvae"]
    settings = { train_size = 5000, eval_size = 2000 }

Settings merge in that order: ``[defaults]``, then ``[models.NAME]``, then the block's
``settings``. Everything is checked when the file is read — unknown keys, models, datasets,
scores, out-of-range values, classes a dataset does not have — so a typo never costs a run.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dcvae.config import ConfigError
from dcvae.data import DATASETS
from dcvae.detector import AnomalyDetector, default_settings
from dcvae.evaluation.protocols import FACTORS, PROTOCOLS
from dcvae.evaluation.run import RUN_SETTINGS, RunSpec
from dcvae.models import MODELS, all_models, model_class
from dcvae.scoring import parse_score
from dcvae.scoring.family import offered_scores
from dcvae.training.config import MAX_SEED

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

_TOP_KEYS = {"name", "description", "scores", "save_models", "save_scores", "defaults", "models",
             "grid", "chosen_on"}
_BLOCK_KEYS = {"datasets", "protocol", "classes", "seeds", "models", "settings"}
_SAVE_MODES = ("none", "first-seed", "all")


@dataclass(frozen=True)
class BenchmarkConfig:
    name: str
    description: str
    scores: tuple[str, ...]
    save_models: str
    runs: tuple[RunSpec, ...]
    source: str  # the TOML text, kept with the results
    chosen_on: tuple[str, ...] = ()  # the datasets whose validation AUC chose the settings

    @property
    def datasets(self) -> list[str]:
        return sorted({r.dataset for r in self.runs})


def load_config(path: str | Path, *, class_count: Callable[[str], int]) -> BenchmarkConfig:
    """Read and check a grid file. ``class_count(dataset)`` gives the number of classes, to resolve
    ``classes = "all"`` and check listed classes (it loads the dataset: a missing one fails here)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"benchmark config {path} does not exist") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return parse_config(raw, text=text, where=str(path), class_count=class_count)


def parse_config(raw: dict[str, Any], *, class_count: Callable[[str], int], text: str = "",
                 where: str = "config") -> BenchmarkConfig:
    _no_unknown(raw, _TOP_KEYS, where)
    name = _typed(raw.get("name", Path(where).stem), str, f"{where}: name")
    description = _typed(raw.get("description", ""), str, f"{where}: description")
    chosen_on = tuple(_str_list(raw.get("chosen_on", []), f"{where}: chosen_on"))
    unknown_sets = sorted(set(chosen_on) - set(DATASETS))
    if unknown_sets:
        raise ConfigError(f"{where}: chosen_on names unknown datasets {unknown_sets}; known: "
                          f"{sorted(DATASETS)}")
    scores = _score_list(raw.get("scores", ["recon"]), f"{where}: scores")
    save_models = raw.get("save_models", "none")
    if save_models not in _SAVE_MODES:
        raise ConfigError(f"{where}: save_models must be one of {list(_SAVE_MODES)}, got {save_models!r}")
    save_scores = _typed(raw.get("save_scores", False), bool, f"{where}: save_scores")
    defaults = _typed(raw.get("defaults", {}), dict, f"{where}: [defaults]")
    _no_unknown_setting(defaults, f"{where}: [defaults]")  # a typo here is blamed here, not on a block
    per_model = dict(_typed(raw.get("models", {}), dict, f"{where}: [models]"))
    model_scores: dict[str, tuple[str, ...]] = {}  # a model section's own `scores`, if it has one
    for model, section in per_model.items():
        _check_model(model, f"{where}: [models.{model}]")
        section = dict(_typed(section, dict, f"{where}: [models.{model}]"))
        if "scores" in section:
            at = f"{where}: [models.{model}] scores"
            model_scores[model] = _score_list(section.pop("scores"), at)
            offered = offered_scores(model_class(model))
            missing = sorted({b for s in model_scores[model] for b in parse_score(s).bases} - set(offered))
            if missing:
                raise ConfigError(f"{at}: {model} does not offer {missing}; its scores: {list(offered)}")
        per_model[model] = section
        _check_settings(model, {**defaults, **section}, f"{where}: [models.{model}]")  # even if unused
    blocks = raw.get("grid")
    if not isinstance(blocks, list) or not blocks:
        raise ConfigError(f"{where}: needs at least one [[grid]] block")

    runs: dict[str, RunSpec] = {}
    checked: set[str] = set()
    for i, block in enumerate(blocks, 1):
        at = f"{where}: [[grid]] block {i}"
        _typed(block, dict, at)
        _no_unknown(block, _BLOCK_KEYS, at)
        for key in ("datasets", "models", "seeds"):
            if key not in block:
                raise ConfigError(f"{at}: missing key {key!r}")
        datasets = _str_list(block["datasets"], f"{at}: datasets")
        models = _str_list(block["models"], f"{at}: models")
        seeds = block["seeds"]
        if (not isinstance(seeds, list) or not seeds
                or not all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s <= MAX_SEED
                           for s in seeds)):
            raise ConfigError(f"{at}: seeds must be a non-empty list of integers in 0..{MAX_SEED}, "
                              f"got {seeds!r}")
        protocol = block.get("protocol", "leave-one-out")
        if protocol not in PROTOCOLS and protocol != FACTORS:
            raise ConfigError(f"{at}: unknown protocol {protocol!r}; choose one of "
                              f"{sorted([*PROTOCOLS, FACTORS])}")
        overrides = _typed(block.get("settings", {}), dict, f"{at}: settings")
        for dataset in datasets:
            if dataset not in DATASETS:
                raise ConfigError(f"{at}: unknown dataset {dataset!r}; known: {sorted(DATASETS)}")
        for model in models:
            _check_model(model, f"{at}: models")
        if protocol == FACTORS:
            _check_factors_block(block, datasets, models, at)
        for dataset in datasets:
            classes = ([-1] if protocol == FACTORS  # no class is held out
                       else _classes(block.get("classes", "all"), class_count(dataset), dataset, at))
            for model in models:
                settings = {**defaults, **per_model.get(model, {}), **overrides}
                if "eval_size" in settings and protocol != FACTORS:
                    raise ConfigError(f"{at}: eval_size is a setting of the {FACTORS!r} protocol (the "
                                      f"test images measured); a {protocol} run scores its whole test split")
                signature = json.dumps([model, settings], sort_keys=True)
                if signature not in checked:
                    _check_settings(model, settings, at)
                    checked.add(signature)
                for k in classes:
                    for seed in seeds:
                        spec = RunSpec(model, dataset, protocol, k, seed, settings,
                                       model_scores.get(model) or scores_for(model, scores),
                                       save_model=save_models == "all"
                                       or (save_models == "first-seed" and seed == seeds[0]),
                                       save_scores=save_scores)
                        runs.setdefault(spec.key, spec)
    return BenchmarkConfig(name, description, scores, save_models, tuple(runs.values()), text, chosen_on)


def _check_factors_block(block: dict[str, Any], datasets: list[str], models: list[str], at: str) -> None:
    """A ``factors`` block: datasets that carry factors, models with latent codes, no classes."""
    if "classes" in block:
        raise ConfigError(f"{at}: the {FACTORS!r} protocol holds no class out (every class trains, "
                          "the class being the condition); drop `classes`")
    with_factors = sorted(name for name, spec in DATASETS.items() if spec.factor_names)
    for dataset in datasets:
        if not DATASETS[dataset].factor_names:
            raise ConfigError(f"{at}: protocol {FACTORS!r} measures codes against known factors, and "
                              f"dataset {dataset!r} has none; datasets with factors: {with_factors}")
    codeless = [model for model in models if model not in MODELS]
    if codeless:
        raise ConfigError(f"{at}: protocol {FACTORS!r} measures latent codes, and {codeless} have none "
                          f"(classical detectors); choose VAEs: {sorted(MODELS)}")


def _no_unknown_setting(settings: dict[str, Any], at: str) -> None:
    """Keys that no model takes: a detector or training setting, a run setting, or a
    hyper-parameter of at least one model (which ones apply is checked per model)."""
    set_by_grid = {"score", "progress"}  # refused by _check_settings, with the reason
    known = set(default_settings()) | set(RUN_SETTINGS) | set_by_grid | {
        f.name for cls in all_models().values() for f in dataclasses.fields(cls.config_class)}
    unknown = sorted(set(settings) - known)
    if unknown:
        close = {k: difflib.get_close_matches(k, sorted(known), n=1) for k in unknown}
        hints = "; ".join(f"{k!r}: did you mean {c[0]!r}?" for k, c in close.items() if c)
        raise ConfigError(f"{at}: unknown setting(s) {unknown}, taken by no model"
                          + (f" ({hints})" if hints else ""))


def _check_settings(model: str, settings: dict[str, Any], at: str) -> None:
    """Check the settings as the detector's fit would: unknown keys and out-of-range values."""
    detector_settings = {k: v for k, v in settings.items() if k not in RUN_SETTINGS}
    for key in RUN_SETTINGS:
        value = settings.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 2):
            raise ConfigError(f"{at}: {key} must be an integer of at least 2, got {value!r}")
    for key in ("score", "anomaly_score", "progress", "seed"):
        if key in detector_settings:
            raise ConfigError(f"{at}: {key!r} is set by the grid itself "
                              + ("(top-level 'scores')" if key in ("score", "anomaly_score") else
                                 "(the block's 'seeds')" if key == "seed" else "(always off)"))
    try:
        AnomalyDetector.from_settings(model, detector_settings).check_settings()
    except (ConfigError, ValueError, TypeError) as err:
        raise ConfigError(f"{at}: settings for model {model!r}: {err}") from None


def _score_list(value: Any, at: str) -> tuple[str, ...]:
    scores = tuple(_str_list(value, at))
    if not scores:
        raise ConfigError(f"{at} must name at least one score")
    try:
        scores = tuple(parse_score(score).name for score in scores)
    except ValueError as err:
        raise ConfigError(f"{at}: {err}") from None
    if len(set(scores)) != len(scores):
        raise ConfigError(f"{at} lists a score twice: {list(scores)}")
    return scores


def _classes(value: Any, n: int, dataset: str, at: str) -> list[int]:
    if value == "all":
        return list(range(n))
    if (not isinstance(value, list) or not value
            or not all(isinstance(k, int) and not isinstance(k, bool) for k in value)):
        raise ConfigError(f"{at}: classes must be \"all\" or a non-empty list of integers, got {value!r}")
    bad = [k for k in value if not 0 <= k < n]
    if bad:
        raise ConfigError(f"{at}: {dataset} has classes 0..{n - 1}; {bad} do not exist")
    return list(value)


def _check_model(model: str, at: str) -> None:
    if model not in all_models():
        raise ConfigError(f"{at}: unknown model {model!r}; choose from {sorted(all_models())}")


def scores_for(model: str, scores: tuple[str, ...]) -> tuple[str, ...]:
    """The grid's scores that ``model`` offers, or its own default score when it offers none of
    them (a classical detector among VAEs: knn records ``distance``, pca keeps ``recon``)."""
    offered = offered_scores(model_class(model))
    return tuple(s for s in scores if set(parse_score(s).bases) <= set(offered)) or (offered[0],)


def _no_unknown(d: dict[str, Any], known: set[str], at: str) -> None:
    unknown = sorted(set(d) - known)
    if unknown:
        raise ConfigError(f"{at}: unknown key(s) {unknown}; allowed: {sorted(known)}")


def _typed(value: Any, kind: type, at: str) -> Any:
    if not isinstance(value, kind):
        raise ConfigError(f"{at} must be a {kind.__name__}, got {type(value).__name__}")
    return value


def _str_list(value: Any, at: str) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{at} must be a list of strings, got {value!r}")
    return value
