"""Tests of decs.config: the profiles, DECS_PROFILE, and the paper profile = the authors' settings."""
from __future__ import annotations

import dataclasses

import pytest

from decs.config import PROFILES, Config, active_profile, get_config

# What each profile may change: how long and on how much data, never what the code does.
SCALE_FIELDS = {"profile", "subset", "pretrain_epochs", "maxiter", "kmeans_n_init"}


@pytest.fixture(autouse=True)
def no_profile_env(monkeypatch):
    monkeypatch.delenv("DECS_PROFILE", raising=False)


def test_paper_profile_is_the_authors_setting():
    """PAPER.md §7 (authors' code): 500 pretraining epochs, 20,000 iterations, batch 256, Adam
    lr 1e-3, α = 0.5, λ = 0.4, labels every 30 iterations, k-means with 20 restarts."""
    cfg = get_config("paper")
    assert cfg.profile == "paper"
    assert cfg.subset is None
    assert cfg.pretrain_epochs == 500
    assert cfg.maxiter == 20_000
    assert cfg.batch_size == 256
    assert cfg.lr == 1e-3
    assert cfg.alpha == 0.5
    assert cfg.lam == 0.4
    assert cfg.update_interval == 30
    assert cfg.kmeans_n_init == 20
    # the rest of §2, §5, §7 and §10
    assert cfg.form == "code" and cfg.threshold == "otsu" and cfg.otsu_bins == 1000
    assert cfg.augment and cfg.shift == 0.1 and cfg.rotation == 10.0
    assert cfg.filters == (32, 64, 128, 256) and cfg.embedding_dim == 10
    assert cfg.dec_alpha == 1.0 and cfg.tol == 0.001
    # the dataclass defaults are the paper setting too
    assert dataclasses.replace(Config(), profile="paper") == cfg


@pytest.mark.parametrize("profile", PROFILES)
def test_each_profile_changes_only_the_scale(profile):
    cfg, paper = get_config(profile), get_config("paper")
    assert cfg.profile == profile
    changed = {f.name for f in dataclasses.fields(Config) if getattr(cfg, f.name) != getattr(paper, f.name)}
    assert changed <= SCALE_FIELDS, changed
    assert cfg.pretrain_epochs <= paper.pretrain_epochs and cfg.maxiter <= paper.maxiter


def test_profiles_get_smaller():
    ci, cpu, paper = (get_config(p) for p in ("ci", "cpu", "paper"))
    assert ci.maxiter < cpu.maxiter < paper.maxiter
    assert ci.pretrain_epochs < cpu.pretrain_epochs < paper.pretrain_epochs
    assert ci.subset is not None and ci.subset > 0


def test_decs_profile_environment_variable(monkeypatch):
    assert get_config().profile == "cpu"  # the default without the variable
    for name in PROFILES:
        monkeypatch.setenv("DECS_PROFILE", name)
        assert active_profile() == name
        assert get_config() == get_config(name)
    monkeypatch.setenv("DECS_PROFILE", " Paper ")  # case and spaces forgiven
    assert get_config().profile == "paper"
    monkeypatch.setenv("DECS_PROFILE", "ci")
    assert get_config("paper").profile == "paper"  # the argument wins over the variable


@pytest.mark.parametrize("name", ["gpu", "full", "papers"])
def test_unknown_profile_raises(monkeypatch, name):
    with pytest.raises(ValueError):
        get_config(name)
    monkeypatch.setenv("DECS_PROFILE", name)
    with pytest.raises(ValueError):
        get_config()


def test_replace_and_overrides():
    cfg = get_config("ci")
    new = cfg.replace(lr=5e-4, lam=0.0)
    assert (new.lr, new.lam) == (5e-4, 0.0) and (cfg.lr, cfg.lam) == (1e-3, 0.4)  # a copy
    assert get_config("ci", maxiter=7).maxiter == 7
    with pytest.raises(ValueError):
        cfg.replace(learning_rate=1e-3)
    with pytest.raises(ValueError):
        get_config("paper", not_a_field=1)
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.lr = 1.0  # type: ignore[misc]


def test_to_dict_round_trips():
    cfg = get_config("cpu")
    d = cfg.to_dict()
    assert d["profile"] == "cpu" and d["alpha"] == 0.5
    assert Config(**d) == cfg
