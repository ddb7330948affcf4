"""Grid files (dcvae.benchmark.grid): every combination, settings in order, stable keys, and every
bad config refused naming the problem before any training."""

from __future__ import annotations

from pathlib import Path

import pytest

from dcvae.benchmark import parse_config
from dcvae.benchmark.grid import load_config
from dcvae.config import ConfigError


def ten(_: str) -> int:
    return 10


def _grid(**top) -> dict:
    raw = {"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": [0], "classes": [0]}]}
    raw.update(top)
    return raw


def test_grid_expands_every_combination_with_settings_in_order():
    raw = {
        "scores": ["elbo", "recon"],
        "defaults": {"epochs": 3, "lr": 1e-3},
        "models": {"dcvae": {"beta": 3.0, "lr": 1e-2}},
        "grid": [{"datasets": ["digits"], "models": ["vae", "dcvae"], "seeds": [0, 1],
                  "classes": "all", "settings": {"epochs": 2}}],
    }
    config = parse_config(raw, class_count=ten)
    assert len(config.runs) == 2 * 2 * 10
    dcvae = [r for r in config.runs if r.model == "dcvae"][0]
    vae = [r for r in config.runs if r.model == "vae"][0]
    assert dcvae.settings == {"epochs": 2, "lr": 1e-2, "beta": 3.0}  # block > model > defaults
    assert vae.settings == {"epochs": 2, "lr": 1e-3}
    assert dcvae.scores == ("elbo", "recon")
    assert sorted({r.target_class for r in config.runs}) == list(range(10))
    assert len({r.key for r in config.runs}) == len(config.runs)


def test_the_same_run_in_two_blocks_runs_once_and_keys_are_stable():
    block = {"datasets": ["digits"], "models": ["vae"], "seeds": [0], "classes": [3]}
    once = parse_config({"grid": [block]}, class_count=ten)
    twice = parse_config({"grid": [block, dict(block)]}, class_count=ten)
    assert [r.key for r in twice.runs] == [r.key for r in once.runs]
    other_seed = parse_config({"grid": [{**block, "seeds": [1]}]}, class_count=ten)
    assert other_seed.runs[0].key != once.runs[0].key


def test_first_seed_saves_models_of_the_first_seed_only():
    config = parse_config(_grid(save_models="first-seed", grid=[
        {"datasets": ["digits"], "models": ["vae"], "seeds": [5, 2], "classes": [0]}]), class_count=ten)
    assert {r.seed: r.save_model for r in config.runs} == {5: True, 2: False}


@pytest.mark.parametrize(("raw", "named"), [
    (_grid(colour="red"), "colour"),
    (_grid(scores=["bogus"]), "bogus"),
    (_grid(save_models="some"), "save_models"),
    ({"grid": [{"datasets": ["digits"], "models": ["vqvae"], "seeds": [0]}]}, "vqvae"),
    ({"grid": [{"datasets": ["cifar"], "models": ["vae"], "seeds": [0]}]}, "cifar"),
    ({"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": [0], "protocol": "lopo"}]}, "lopo"),
    ({"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": [0], "classes": [10]}]}, "[10]"),
    ({"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": []}]}, "seeds"),
    ({"grid": [{"datasets": ["digits"], "models": ["vae"]}]}, "seeds"),
    ({"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": [0, -1]}]}, "0..4294967295"),
    ({"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": [0], "extra": 1}]}, "extra"),
    ({"grid": []}, "[[grid]]"),
    (_grid(defaults={"beta": 2.0}), "beta"),  # the VAE has no beta
    # a typo in [defaults] is blamed on [defaults], not on the first block (issue 15, item 9)
    (_grid(defaults={"epoch": 3}), "[defaults]: unknown setting(s) ['epoch'], taken by no model ('epoch': "
                                   "did you mean 'epochs'?)"),
    (_grid(defaults={"epochs": 0}), "epochs"),
    (_grid(defaults={"lr": "fast"}), "lr"),
    (_grid(defaults={"score": "elbo"}), "scores"),
    (_grid(defaults={"train_size": 1}), "train_size"),
    (_grid(models={"dcvae": {"betta": 3.0}}), "betta"),
    (_grid(models={"dcvae": {"scores": ["recon", "recon"]}}), "twice"),
    (_grid(models={"knn": {"scores": ["elbo"]}}), "elbo"),
    (_grid(chosen_on=["cifar"]), "chosen_on"),
])
def test_bad_configs_are_refused_naming_the_problem(raw, named):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, class_count=ten)
    assert named in str(err.value)


def test_config_file_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", class_count=ten)
    bad = tmp_path / "bad.toml"
    bad.write_text("name = [unclosed")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(bad, class_count=ten)




def test_each_model_records_the_scores_it_offers_or_its_own():
    raw = {"scores": ["recon", "elbo"], "chosen_on": ["digits"],
           "models": {"dcvae-prior": {"scores": ["recon+latent", "recon"]}},
           "grid": [{"datasets": ["digits"], "models": ["vae", "pca", "knn", "dcvae-prior"], "seeds": [0],
                     "classes": [0]}]}
    config = parse_config(raw, class_count=ten)
    scores = {spec.model: spec.scores for spec in config.runs}
    assert scores == {"vae": ("recon", "elbo"),  # the grid's
                      "pca": ("recon",),  # the grid's that it offers
                      "knn": ("distance",),  # none offered: its own
                      "dcvae-prior": ("recon+latent", "recon")}  # its section's
    assert config.chosen_on == ("digits",)
    assert all("scores" not in spec.settings for spec in config.runs)


# ----------------------------------------------------------------------------- protocol "factors"

def _factors_block(**block) -> dict:
    return {"grid": [{"datasets": ["dsprites"], "protocol": "factors", "models": ["vae", "dcvae"],
                      "seeds": [0, 1], "settings": {"train_size": 500, "eval_size": 300}, **block}]}


def test_a_factors_block_is_one_run_per_model_and_seed_holding_no_class_out():
    def no_loading(name: str) -> int:
        raise AssertionError(f"a factors block has no classes to count, yet {name} was loaded")

    config = parse_config(_factors_block(), class_count=no_loading)
    assert sorted((r.model, r.seed) for r in config.runs) == [("dcvae", 0), ("dcvae", 1), ("vae", 0),
                                                               ("vae", 1)]
    assert {(r.protocol, r.target_class, r.dataset) for r in config.runs} == {("factors", -1, "dsprites")}
    assert all(r.settings == {"train_size": 500, "eval_size": 300} for r in config.runs)
    assert len({r.key for r in config.runs}) == 4
    assert "class" not in config.runs[0].label  # "vae dsprites factors seed 0"


@pytest.mark.parametrize(("raw", "named"), [
    # a dataset without factors is named, with the ones that have them
    (_factors_block(datasets=["digits"]), "dataset 'digits' has none; datasets with factors: ['dsprites']"),
    (_factors_block(models=["vae", "knn"]), "['knn'] have none"),
    (_factors_block(classes=[0]), "drop `classes`"),
    (_factors_block(settings={"eval_size": 1}), "eval_size must be an integer of at least 2"),
    # eval_size only means something to the factors protocol
    ({"grid": [{"datasets": ["digits"], "models": ["vae"], "seeds": [0], "classes": [0],
                "settings": {"eval_size": 100}}]}, "eval_size is a setting of the 'factors' protocol"),
])
def test_factors_blocks_are_refused_naming_the_problem(raw, named):
    with pytest.raises(ConfigError) as err:
        parse_config(raw, class_count=ten)
    assert named in str(err.value)
