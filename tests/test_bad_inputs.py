"""Bad inputs, one table: each is refused with a message that says what is wrong and what to do,
before any training starts, and leaves every file as it was (``results/``, the tmp results and
checkpoint folders). Command-line cases run ``decs.__main__.main`` in-process: they end with exit
status 2 and one line on stderr (beside the ``[decs]`` progress lines of a run that got as far as
its data). The estimators and loaders raise their own errors."""
from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from decs import DEC, DECS, HaDis, data
from decs.__main__ import main
from decs.config import Config, ConfigError, get_config
from decs.files import CheckpointError, read_checkpoint
from decs.hadis import HaDisConfig
from decs.runs import checkpoint_dir

REPO = Path(__file__).resolve().parent.parent
SOURCE = data.data_root()  # the real files (DECS_DATA), copied and damaged for the data cases
needs_usps = pytest.mark.skipif(not data.is_available("usps"),
                                reason=f"usps files not found under {SOURCE}: set DECS_DATA")
FAST = dict(pretrain_epochs=1, maxiter=2, kmeans_n_init=1, batch_size=4, profile="ci")


@dataclass
class Ctx:
    """The folders a case may damage: its own results, checkpoints and data."""
    tmp: Path
    res: Path
    ck: Path
    data: Path


def _images(n=10, fill=0.5):
    return np.full((n, 1, 8, 8), fill, dtype=np.float32)


# ------------------------------------------------------------------ what each case prepares
def _pretrain_ck(ctx: Ctx) -> Path:
    path = checkpoint_dir("usps", get_config("ci"), 0) / "pretrain.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def truncated_checkpoint(ctx):
    path = _pretrain_ck(ctx)
    torch.save({"key": {}, "model": {"w": torch.zeros(1000)}, "losses": [1.0]}, path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def corrupted_checkpoint(ctx):
    _pretrain_ck(ctx).write_bytes(np.random.default_rng(0).bytes(4096))


def other_settings_checkpoint(ctx):
    torch.save({"key": {"profile": "paper", "n": 9298}, "model": {}, "losses": []}, _pretrain_ck(ctx))


def usps_copy(ctx, damage=None):
    (ctx.data / "usps").mkdir(parents=True)
    for f in (SOURCE / "usps").glob("*.jf.gz"):
        shutil.copy(f, ctx.data / "usps" / f.name)
    if damage:
        damage(ctx.data / "usps" / "usps_test.jf.gz")


def wrong_checksum(ctx):
    usps_copy(ctx, lambda p: p.write_bytes(p.read_bytes() + b"\0"))


def missing_data_file(ctx):
    usps_copy(ctx, lambda p: p.unlink())


def existing_record(ctx):
    path = ctx.res / "usps" / "decs" / "ci-seed0.json"
    path.parent.mkdir(parents=True)
    path.write_text('{"final": {"acc": 0.5}}')


def _record(ctx, **changes) -> Path:
    """A record with its two model files under ctx.res; ``changes`` replace its fields."""
    files = {}
    for name in ("pretrained", "final"):
        rel = f"usps/{'pretrained' if name == 'pretrained' else 'decs'}/ci-seed0.pt"
        (ctx.res / rel).parent.mkdir(parents=True, exist_ok=True)
        torch.save({"encoder": {}, "autoencoder": {}}, ctx.res / rel)
        files[name] = {"path": rel, "sha256": data.sha256(ctx.res / rel)}
    rec = {"dataset": "usps", "method": "decs", "seed": 0, "config": get_config("ci").to_dict(),
           "final": {"acc": 0.5, "nmi": 0.5, "ari": 0.5}, "environment": {"device": "cpu"},
           "model_files": files, **changes}
    path = ctx.res / "usps" / "decs" / "ci-seed0.json"
    path.write_text(json.dumps(rec))
    return path


def tampered_model_file(ctx):
    _record(ctx)
    with open(ctx.res / "usps" / "decs" / "ci-seed0.pt", "ab") as f:
        f.write(b"x")


def missing_model_file(ctx):
    _record(ctx)
    (ctx.res / "usps" / "decs" / "ci-seed0.pt").unlink()


def truncated_record(ctx):
    path = _record(ctx)
    path.write_text(path.read_text()[:40])


def not_a_record(ctx):
    _record(ctx)
    (ctx.res / "usps" / "decs" / "ci-seed0.json").write_text('{"acc": 0.9}')


def bad_start_file(ctx):
    (ctx.tmp / "start.pt").write_bytes(b"not a torch file")


def fit(est, x):
    return lambda ctx: est.fit(x)


def _nan_images():
    x = _images()
    x[3, 0, 2, 2] = np.nan
    return x


def _inf_features():
    x = np.random.default_rng(0).normal(size=(10, 5))
    x[1, 1] = np.inf
    return x


CLI = ["--profile", "ci", "--quiet"]
TRAIN = ["train", "--dataset", "usps", *CLI]
RECORD = "{res}/usps/decs/ci-seed0.json"

# (id, what runs: a command line for main() or a callable, what it raises (None: exit status 2),
#  a regex the message matches, what the case prepares first)
CASES = [
    # --- the command line: settings, refused before any data is loaded
    ("cli-negative-pretrain-epochs", [*TRAIN, "--set", "pretrain_epochs=-5"], None,
     r"^python -m decs train: error: pretrain_epochs must be a whole number ≥ 1, got -5; .*--start-from", None),
    ("cli-lr-not-a-number", [*TRAIN, "--set", "lr=abc"], None,
     r"error: --set lr=abc: lr takes a number .*e\.g\. --set lr=0\.001", None),
    ("cli-unknown-dataset", ["train", "--dataset", "cifar-7", *CLI], None,
     r"error: unknown dataset 'cifar-7'; valid names are 'mnist'", None),
    ("cli-unknown-method", [*TRAIN, "--method", "kmeans"], None,
     r"error: argument --method: invalid choice: 'kmeans'.*--help", None),
    ("cli-unknown-profile", ["train", "--dataset", "usps", "--profile", "huge"], None,
     r"error: argument --profile: invalid choice: 'huge'", None),
    ("cli-unknown-field", [*TRAIN, "--set", "epochs=3"], None, r"error: --set expects FIELD=VALUE with FIELD one of", None),
    ("cli-not-a-pair", [*TRAIN, "--set", "maxiter"], None, r"error: --set expects FIELD=VALUE", None),
    ("cli-fractional-iterations", [*TRAIN, "--set", "maxiter=2.5"], None,
     r"error: --set maxiter=2\.5: maxiter takes a whole number", None),
    ("cli-bool-not-a-bool", [*TRAIN, "--set", "augment=maybe"], None, r"augment takes true or false", None),
    ("cli-zero-iterations", [*TRAIN, "--set", "maxiter=0"], None, r"error: maxiter must be a whole number ≥ 1, got 0", None),
    ("cli-zero-alpha", [*TRAIN, "--set", "alpha=0"], None, r"error: alpha must be a finite number > 0\.0, got 0\.0", None),
    ("cli-negative-lambda", [*TRAIN, "--set", "lam=-0.1"], None, r"error: lam must be a finite number ≥ 0\.0", None),
    ("cli-nan-lr", [*TRAIN, "--set", "lr=nan"], None, r"error: lr must be a finite number > 0\.0, got nan", None),
    ("cli-zero-batch", [*TRAIN, "--set", "batch_size=0"], None, r"error: batch_size must be a whole number ≥ 1", None),
    ("cli-unknown-form", [*TRAIN, "--set", "form=quadratic"], None,
     r"error: form must be one of \('code', 'paper'\), got 'quadratic'", None),
    ("cli-batch-larger-than-subset", [*TRAIN, "--set", "subset=100"], None,
     r"error: batch_size=256 is larger than subset=100.*batch_size=100", None),
    ("cli-k-larger-than-n", [*TRAIN, "--set", "subset=5", "batch_size=5"], None,
     r"error: subset=5 holds fewer samples than the 10 clusters of USPS \(k larger than n\)", None),
    ("cli-subset-larger-than-dataset", [*TRAIN, "--set", "subset=100000"], None,
     r"error: subset=100000 is larger than USPS \(9,298 samples\)", None),
    ("cli-hadis-zero-epochs", [*TRAIN, "--method", "hadis", "--set", "epochs=0"], None,
     r"error: epochs must be a whole number ≥ 1, got 0", None),
    ("cli-hadis-with-start", [*TRAIN, "--method", "hadis", "--start-from", "x.pt"], None,
     r"error: --start-from gives DECS or DEC a pretrained autoencoder", None),
    # --- the command line: files
    ("cli-record-missing", ["evaluate", "--record", "missing.json", *CLI], None,
     r"^python -m decs evaluate: error: no record at missing\.json: give the path of a run's record", None),
    ("cli-record-truncated", ["evaluate", "--record", RECORD, *CLI], None, r"is not a run record: not valid JSON", truncated_record),
    ("cli-record-not-a-record", ["evaluate", "--record", RECORD, *CLI], None, r"is not a run record: it lacks", not_a_record),
    ("cli-model-file-sha256-differs", ["evaluate", "--record", RECORD, *CLI], None,
     r"ci-seed0\.pt has sha256 [0-9a-f]{64}, the record says [0-9a-f]{64}: it is not the network", tampered_model_file),
    ("cli-model-file-missing", ["evaluate", "--record", RECORD, *CLI], None, r"ci-seed0\.pt is missing: the record names it",
     missing_model_file),
    ("cli-record-exists", TRAIN, None, r"already holds a run's record; .*--replace", existing_record),
    ("cli-start-from-not-torch", [*TRAIN, "--start-from", "{tmp}/start.pt"], None,
     r"--start-from .*start\.pt: not a readable network file", bad_start_file),
    ("cli-start-from-missing", [*TRAIN, "--start-from", "{tmp}/none.pt"], None, r"--start-from .*none\.pt: no such file", None),
    ("cli-evaluate-no-checkpoint", ["evaluate", "--dataset", "usps", *CLI], None, r"error: no checkpoint at .*: run `python -m decs train", None),
    pytest.param("cli-truncated-checkpoint", [*TRAIN, "--resume"], None,
                 r"pretrain\.pt is not a readable checkpoint \(truncated or corrupted: .*delete it", truncated_checkpoint,
                 marks=needs_usps),
    pytest.param("cli-corrupted-checkpoint", TRAIN, None, r"pretrain\.pt is not a readable checkpoint", corrupted_checkpoint,
                 marks=needs_usps),
    pytest.param("cli-checkpoint-of-other-settings", [*TRAIN, "--resume"], None,
                 r"pretrain\.pt was pretrained with other settings .*delete it", other_settings_checkpoint, marks=needs_usps),
    pytest.param("cli-data-wrong-checksum", TRAIN, None,
                 r"error: USPS: some files under .* are not the published files.*; delete the corrupt files and get them again",
                 wrong_checksum, marks=needs_usps),
    pytest.param("cli-data-file-missing", TRAIN, None,
                 r"error: USPS is not available on this machine: 1 of 2 files are missing .*set DECS_DATA",
                 missing_data_file, marks=needs_usps),
    # --- the estimators (scikit-learn's parameter validation, then the input's)
    ("estimator-nan-image", fit(DECS(n_clusters=2, **FAST), _nan_images()), ValueError, r"NaN or inf", None),
    ("estimator-inf-features", fit(DEC(n_clusters=2, **FAST), _inf_features()), ValueError, r"infinity", None),
    ("estimator-empty", fit(DECS(n_clusters=2, **FAST), np.zeros((0, 1, 8, 8), np.float32)), ValueError, r"empty", None),
    ("estimator-k-larger-than-n", fit(DECS(n_clusters=20, **FAST), _images()), ValueError,
     r"n_clusters=20 is larger than the number of samples \(n_samples=10\)", None),
    ("estimator-negative-lr", fit(DEC(n_clusters=2, lr=-1.0), _images()), ValueError,
     r"The 'lr' parameter of DEC must be a float in the range \(0\.0, inf\) or None", None),
    ("estimator-zero-epochs", fit(DECS(n_clusters=2, pretrain_epochs=0), _images()), ValueError,
     r"The 'pretrain_epochs' parameter of DECS must be an int in the range \[1, inf\)", None),
    ("estimator-unknown-threshold", fit(DECS(n_clusters=2, threshold="median"), _images()), ValueError,
     r"The 'threshold' parameter of DECS must be a str among", None),
    ("estimator-hadis-batch-of-one", fit(HaDis(n_clusters=2, batch_size=1), _images()), ValueError,
     r"The 'batch_size' parameter of HaDis must be an int in the range \[2, inf\)", None),
    # --- the configurations and the loaders
    ("config-negative-epochs", lambda ctx: Config(pretrain_epochs=-5), ConfigError, r"pretrain_epochs must be a whole number ≥ 1", None),
    ("config-string-lr", lambda ctx: get_config("ci", lr="0.1"), ConfigError, r"lr must be a finite number > 0\.0, got '0\.1'", None),
    ("config-bool-as-int", lambda ctx: get_config("ci", maxiter=True), ConfigError, r"maxiter must be a whole number", None),
    ("config-hadis-crop", lambda ctx: HaDisConfig(crop_scale=(0.5, 2.0)), ConfigError, r"crop_scale must be \(lo, hi\)", None),
    ("config-hadis-ema", lambda ctx: HaDisConfig(ema=1.5), ConfigError, r"ema must be a finite number in \[0\.0, 1\.0\]", None),
    ("checkpoint-truncated", lambda ctx: read_checkpoint(_pretrain_ck(ctx)), CheckpointError,
     r"is not a readable checkpoint \(truncated or corrupted", truncated_checkpoint),
    pytest.param("loader-wrong-checksum", lambda ctx: data.load("usps", root=ctx.data), data.DatasetCorruptError,
                 r"not the published files", wrong_checksum, marks=needs_usps),
    pytest.param("loader-file-missing", lambda ctx: data.load("usps", root=ctx.data), data.DatasetNotFoundError,
                 r"1 of 2 files are missing", missing_data_file, marks=needs_usps),
    pytest.param("loader-empty-subset", lambda ctx: data.load("usps", subset=0), ValueError, r"subset=0 is not possible",
                 None, marks=needs_usps),
]
CASES = [c if hasattr(c, "values") else pytest.param(*c) for c in CASES]
CASES = [pytest.param(*c.values[1:], id=c.values[0], marks=c.marks) for c in CASES]


def _tree(*roots: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``roots`` with its size and modification time (authors-tf/ aside: the
    authors' code's jobs may write there while the tests run)."""
    out = {}
    for root in roots:
        for p in root.rglob("*") if root.exists() else ():
            if p.is_file() and "authors-tf" not in p.parts:
                out[str(p)] = (p.stat().st_size, p.stat().st_mtime_ns)
    return out


@pytest.mark.parametrize("action, error, message, prepare", CASES)
def test_a_bad_input_is_refused_with_a_message_and_changes_nothing(action, error, message, prepare, tmp_path,
                                                                   monkeypatch, capsys):
    ctx = Ctx(tmp_path, tmp_path / "res", tmp_path / "ck", tmp_path / "data")
    monkeypatch.setenv("DECS_CHECKPOINTS", str(ctx.ck))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    if prepare is not None:
        prepare(ctx)
    if prepare in (wrong_checksum, missing_data_file):
        monkeypatch.setenv("DECS_DATA", str(ctx.data))
    before = _tree(REPO / "results", ctx.res, ctx.ck, ctx.data)
    if error is None:  # the command line: exit status 2, one line on stderr
        argv = [a.format(res=ctx.res, tmp=ctx.tmp) for a in action]
        with pytest.raises(SystemExit) as stop:
            main([*argv, "--results", str(ctx.res)] if argv[0] in ("train", "evaluate") else argv)
        assert stop.value.code == 2
        err = capsys.readouterr().err
        lines = [line for line in err.splitlines() if not line.startswith("[decs]")]
        assert len(lines) == 1, err
        assert re.search(message, lines[0]), lines[0]
    else:
        with pytest.raises(error) as raised:
            action(ctx)
        assert re.search(message, str(raised.value)), str(raised.value)
    assert _tree(REPO / "results", ctx.res, ctx.ck, ctx.data) == before


def test_the_table_has_at_least_20_cases_across_the_command_line_estimators_and_loaders():
    ids = [c.id for c in CASES]
    assert len(ids) >= 20 and len(set(ids)) == len(ids)
    assert {i.split("-")[0] for i in ids} >= {"cli", "estimator", "config", "loader", "checkpoint"}
