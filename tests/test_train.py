"""The training loop: augmentation, determinism, checkpoints that resume to the identical result."""
import numpy as np
import pytest
import torch

import decs.files
from decs.device import make_generator
from decs.files import ADDED_LATER, write_record
from decs.models import ConvAutoencoder, MLPAutoencoder
from decs.passes import augment, embed
from decs.runs import PRETRAIN_FIELDS, fit_clusters, pretrained_autoencoder, run
from decs.train import cluster, kmeans_init, pretrain


def test_augment_shapes_range_and_randomness():
    x = torch.rand(16, 1, 16, 16)
    g = make_generator(torch.device("cpu"), 0)
    a = augment(x, g)
    assert a.shape == x.shape and a.dtype == x.dtype
    assert a.min() >= 0 and a.max() <= 1  # bilinear + border fill stays in range
    assert not torch.allclose(a, x)
    # same generator state → same augmentation; identity when shift = rotation = 0
    g1, g2 = make_generator(torch.device("cpu"), 5), make_generator(torch.device("cpu"), 5)
    assert torch.equal(augment(x, g1), augment(x, g2))
    assert torch.equal(augment(x, g1, shift=0, rotation=0), x)


def test_augment_shift_moves_mass_by_at_most_ten_percent():
    x = torch.zeros(200, 1, 20, 20)
    x[:, :, 8:12, 8:12] = 1.0
    a = augment(x, make_generator(torch.device("cpu"), 1), shift=0.1, rotation=0)
    grid = torch.arange(20.0)
    cy = (a.sum(3) * grid).sum(-1).squeeze(1) / a.sum((2, 3)).squeeze(1)
    cx = (a.sum(2) * grid).sum(-1).squeeze(1) / a.sum((2, 3)).squeeze(1)
    assert (cy - 9.5).abs().max() <= 2.0 + 1e-4 and (cx - 9.5).abs().max() <= 2.0 + 1e-4
    assert (cy - 9.5).abs().max() > 1.0  # and it does move


def test_pretraining_reduces_reconstruction_error(blobs, tiny_cfg):
    x = torch.as_tensor(blobs[0])
    model = ConvAutoencoder(tuple(x.shape[1:]))
    losses, seconds = pretrain(model, x, tiny_cfg.replace(pretrain_epochs=6), make_generator(torch.device("cpu"), 0),
                               progress=False)
    assert len(losses) == 6 and seconds > 0
    assert losses[-1] < losses[0]


@pytest.mark.parametrize("method", ["decs", "dec"])
def test_centroids_change_after_one_step(blobs, tiny_cfg, method):
    x = torch.as_tensor(blobs[0])
    torch.manual_seed(0)
    model = ConvAutoencoder(tuple(x.shape[1:]))
    z = embed(model.encoder, x)
    c0, _ = kmeans_init(z, 3, n_init=2, seed=0)
    res = cluster(model.encoder, c0, x, tiny_cfg.replace(maxiter=1), make_generator(torch.device("cpu"), 0),
                  method=method, progress=False)
    assert res.iterations == 1
    assert not torch.allclose(res.centroids, c0)
    assert torch.isfinite(res.centroids).all()


def test_same_seed_identical_labels(blobs, tiny_cfg):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    a = run(x, y, tiny_cfg, seed=3, device="cpu", progress=False)
    b = run(x, y, tiny_cfg, seed=3, device="cpu", progress=False)
    assert np.array_equal(a.labels, b.labels)
    assert a.record["history"] == b.record["history"]
    assert torch.equal(a.centroids, b.centroids)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize("method", ["decs", "dec"])
def test_interrupted_run_resumes_to_identical_result(blobs, tiny_cfg, tmp_path, method):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    cfg = tiny_cfg.replace(dec_update_interval=4, tol=0.0)  # DEC must not stop early here
    full = run(x, y, cfg, method=method, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path / "a")

    def stop_at_8(record, z, centroids):
        if record["iteration"] == 8:
            raise _Interrupt

    with pytest.raises(_Interrupt):  # interrupted after the checkpoint at iteration 5
        run(x, y, cfg, method=method, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path / "b",
            on_eval=stop_at_8)
    assert (tmp_path / "b" / f"{method}.pt").exists()
    resumed = run(x, y, cfg, method=method, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path / "b")
    assert np.array_equal(full.labels, resumed.labels)
    assert full.record["final"] == resumed.record["final"]
    assert full.record["history"] == resumed.record["history"]
    assert torch.equal(full.centroids, resumed.centroids)
    # how many processes each part took: the clustering was resumed once, the pretraining was not
    assert full.record["wall_time_s"]["processes"] == {"pretrain": 1, "cluster": 1}
    assert resumed.record["wall_time_s"]["processes"] == {"pretrain": 1, "cluster": 2}
    again = run(x, y, cfg, method=method, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path / "b")
    assert again.record["wall_time_s"]["processes"] == {"pretrain": 1, "cluster": 2}   # read back: no new one
    # and which code trained each part: one commit here, listed once however often it resumed
    here = decs.files.this_commit()
    for r in (full, resumed, again):
        assert r.record["environment"]["commits"] == {"pretrain": [here], "cluster": [here]}


def test_a_run_resumed_by_other_code_names_both_commits(blobs, tiny_cfg, tmp_path, monkeypatch):
    """Issue 27: a record never mixes code versions silently. A clustering interrupted under one
    commit and resumed under another warns, and its record lists both for that part."""
    x, y = torch.as_tensor(blobs[0]), blobs[1]

    def stop_at_8(record, z, centroids):
        if record["iteration"] == 8:
            raise _Interrupt

    monkeypatch.setattr(decs.files, "this_commit", lambda: "aaa")
    with pytest.raises(_Interrupt):
        run(x, y, tiny_cfg, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path, on_eval=stop_at_8)
    monkeypatch.setattr(decs.files, "this_commit", lambda: "bbb")
    with pytest.warns(UserWarning, match="the clustering resumes from a checkpoint written by aaa with the code at bbb"):
        resumed = run(x, y, tiny_cfg, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path)
    assert resumed.record["environment"]["commits"] == {"pretrain": ["aaa"], "cluster": ["aaa", "bbb"]}


def test_stage_provenance_of_older_checkpoints():
    """A checkpoint written before commits were kept lists an unknown one (None) first and counts one
    process; a finished stage read back adds neither; a fresh stage starts both with this process.
    Threads: one entry per process, None for each process of a checkpoint that did not keep them."""
    here, n = decs.files.this_commit(), torch.get_num_threads()
    assert decs.files.stage_provenance(None, True) == (1, [here], [n])
    assert decs.files.stage_provenance({"commits": [here], "processes": 2}, True) == (3, [here], [None, None, n])
    assert decs.files.stage_provenance({"commits": ["x"], "processes": 2}, False) == (2, ["x"], [None, None])
    assert decs.files.stage_provenance({"commits": [here], "processes": 2, "threads": [1, 2]}, True)[2] == [1, 2, n]
    with pytest.warns(UserWarning, match="code that did not record its commit"):
        assert decs.files.stage_provenance({}, True) == (2, [None, here], [None, n])


def test_records_keep_each_process_threads(blobs, tiny_cfg, tmp_path):
    """Issue 27, honest wall time: a stage resumed by a process with more threads says so. The
    clustering interrupted on one thread and resumed on two lists [1, 2]; the pretraining, one
    process on one thread, [1]; read back, nothing is added."""
    x, y = torch.as_tensor(blobs[0]), blobs[1]

    def stop_at_8(record, z, centroids):
        if record["iteration"] == 8:
            raise _Interrupt

    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        with pytest.raises(_Interrupt):
            run(x, y, tiny_cfg, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path, on_eval=stop_at_8)
        torch.set_num_threads(2)
        resumed = run(x, y, tiny_cfg, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path)
        again = run(x, y, tiny_cfg, seed=1, device="cpu", progress=False, checkpoint_dir=tmp_path)
    finally:
        torch.set_num_threads(before)
    for r in (resumed, again):
        assert r.record["wall_time_s"]["threads"] == {"pretrain": [1], "cluster": [1, 2]}
        assert r.record["wall_time_s"]["processes"] == {"pretrain": 1, "cluster": 2}


def test_interrupted_pretraining_resumes_identically(blobs, tiny_cfg, tmp_path):
    x = torch.as_tensor(blobs[0])
    cfg = tiny_cfg.replace(pretrain_epochs=12)  # checkpoints every 10 epochs
    key = {"test": 1}
    m1 = ConvAutoencoder(tuple(x.shape[1:]))
    state0 = {k: v.clone() for k, v in m1.state_dict().items()}
    losses_full, _ = pretrain(m1, x, cfg, make_generator(torch.device("cpu"), 0), progress=False)

    m2 = ConvAutoencoder(tuple(x.shape[1:]))
    m2.load_state_dict(state0)

    def stop(epoch, loss):
        if epoch == 10:
            raise _Interrupt

    with pytest.raises(_Interrupt):
        pretrain(m2, x, cfg, make_generator(torch.device("cpu"), 0), checkpoint=tmp_path / "p.pt",
                 progress=False, on_epoch=stop, key=key)
    m3 = ConvAutoencoder(tuple(x.shape[1:]))
    losses_resumed, _ = pretrain(m3, x, cfg, make_generator(torch.device("cpu"), 0),
                                 checkpoint=tmp_path / "p.pt", progress=False, key=key)
    assert losses_resumed == losses_full
    saved = torch.load(tmp_path / "p.pt", weights_only=False)
    assert (saved["processes"], saved["commits"]) == (2, [decs.files.this_commit()])   # interrupted once
    assert saved["threads"] == [torch.get_num_threads()] * 2
    for k, v in m1.state_dict().items():
        assert torch.equal(v, m3.state_dict()[k]), k
    with pytest.raises(ValueError, match="other settings"):
        pretrain(ConvAutoencoder(tuple(x.shape[1:])), x, cfg, make_generator(torch.device("cpu"), 0),
                 checkpoint=tmp_path / "p.pt", progress=False, key={"test": 2})


def test_pretraining_also_saves_after_a_long_epoch(blobs, tiny_cfg, tmp_path, monkeypatch):
    """Issue 27: an MNIST epoch takes minutes on one thread, so a process ending with its session
    would lose up to ten of them; the checkpoint is also written once SAVE_EVERY_S have passed since
    the last write. With the limit at 0 every epoch is saved and the run resumes after epoch 4 to
    the same losses; with no time limit an interruption at epoch 4 leaves no checkpoint."""
    import decs.train

    x = torch.as_tensor(blobs[0])
    cfg = tiny_cfg.replace(pretrain_epochs=6)

    def net():   # the same initial weights every time
        torch.manual_seed(0)
        return ConvAutoencoder(tuple(x.shape[1:]))

    full, _ = pretrain(net(), x, cfg, make_generator(torch.device("cpu"), 0), progress=False)

    def stop(epoch, loss):
        if epoch == 3:
            raise _Interrupt

    for limit, kept in ((float("inf"), None), (0.0, 4)):
        monkeypatch.setattr(decs.train, "SAVE_EVERY_S", limit)
        ck = tmp_path / f"p{limit}.pt"
        with pytest.raises(_Interrupt):
            pretrain(net(), x, cfg, make_generator(torch.device("cpu"), 0), checkpoint=ck, progress=False,
                     on_epoch=stop)
        saved = torch.load(ck, weights_only=False) if ck.exists() else None
        assert (saved and len(saved["losses"])) == kept
    resumed, _ = pretrain(net(), x, cfg, make_generator(torch.device("cpu"), 0), checkpoint=ck, progress=False)
    assert resumed == full


def test_dec_stops_when_labels_settle(blobs, tiny_cfg):
    x = torch.as_tensor(blobs[0])
    fitted = fit_clusters(x, 3, tiny_cfg.replace(maxiter=400, dec_update_interval=4, tol=0.5), method="dec",
                          seed=0, progress=False)
    assert fitted.result.stopped_early and fitted.result.iterations < 400


def test_run_record_has_provenance(blobs, tiny_cfg, tmp_path):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    rec = run(x, y, tiny_cfg, seed=0, device="cpu", progress=False, dataset="blobs").record
    for key in ("final", "best_label_selected", "kmeans_on_embedding", "history", "config", "seed",
                "environment", "wall_time_s"):
        assert key in rec
    assert rec["history"][-1]["iteration"] == tiny_cfg.maxiter
    assert [h["iteration"] for h in rec["history"]] == [0, 4, 8, 12]
    assert set(rec["final"]) == {"acc", "nmi", "ari", "clusters_used"} and 0 <= rec["final"]["acc"] <= 1
    for h in rec["history"]:  # cluster sizes at every evaluation: k entries summing to n
        assert len(h["cluster_sizes"]) == len(np.unique(y)) and sum(h["cluster_sizes"]) == len(y)
    assert rec["final"]["clusters_used"] == np.count_nonzero(rec["history"][-1]["cluster_sizes"])
    assert rec["environment"]["device"] == "cpu" and rec["environment"]["torch"]
    env = rec["environment"]  # the code version this process imported; which files differed then
    assert env["dirty"] == bool(env["dirty_files"]) and all(isinstance(f, str) for f in env["dirty_files"])
    path = write_record(rec, tmp_path / "r.json")
    import json

    assert json.loads(path.read_text())["final"] == rec["final"]


def test_run_needs_labels(blobs, tiny_cfg):
    with pytest.raises(ValueError, match="labels"):
        run(torch.as_tensor(blobs[0]), None, tiny_cfg, progress=False)


def test_clustering_checkpoint_refuses_other_settings(blobs, tiny_cfg, tmp_path):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    run(x, y, tiny_cfg, seed=0, device="cpu", progress=False, checkpoint_dir=tmp_path)
    with pytest.raises(ValueError, match="other settings"):
        run(x, y, tiny_cfg.replace(lam=0.1), seed=0, device="cpu", progress=False, checkpoint_dir=tmp_path)
    # a clustering tag keeps runs with other clustering settings apart, sharing the pretraining
    run(x, y, tiny_cfg.replace(lam=0.1), seed=0, device="cpu", progress=False, checkpoint_dir=str(tmp_path),
        tag="+lam=0.1")
    assert (tmp_path / "decs+lam=0.1.pt").exists()


def test_recalibrated_batchnorm_matches_data_statistics():
    from decs.passes import recalibrate_batchnorm

    torch.manual_seed(0)
    x = torch.rand(300, 1, 16, 16) * 0.5 + 0.25
    model = ConvAutoencoder((1, 16, 16))
    bn = model.encoder[2]  # the batch norm after the first convolution and ReLU
    assert torch.allclose(bn.running_mean, torch.zeros_like(bn.running_mean))
    recalibrate_batchnorm(model, x, batch_size=300)
    with torch.no_grad():
        h = model.encoder[1](model.encoder[0](x))  # conv → ReLU: the input of that batch norm
    assert torch.allclose(bn.running_mean, h.mean((0, 2, 3)), atol=1e-5)
    assert bn.momentum == 0.01 and model.training


def test_continuing_a_finished_run_equals_one_longer_run(blobs, tiny_cfg, tmp_path):
    x, y = torch.as_tensor(blobs[0]), blobs[1]
    for method in ("decs", "dec"):
        cfg = tiny_cfg.replace(dec_update_interval=4, tol=0.0)
        longer = run(x, y, cfg.replace(maxiter=16), method=method, seed=2, device="cpu", progress=False,
                     checkpoint_dir=tmp_path / f"one-{method}")
        run(x, y, cfg.replace(maxiter=8), method=method, seed=2, device="cpu", progress=False,
            checkpoint_dir=tmp_path / f"two-{method}")
        continued = run(x, y, cfg.replace(maxiter=16), method=method, seed=2, device="cpu", progress=False,
                        checkpoint_dir=tmp_path / f"two-{method}")
        with pytest.raises(ValueError, match="past maxiter"):  # never a longer run passed off as a shorter
            run(x, y, cfg.replace(maxiter=8), method=method, seed=2, device="cpu", progress=False,
                checkpoint_dir=tmp_path / f"two-{method}")
        its = [h["iteration"] for h in continued.record["history"]]
        assert its == sorted(set(its)), f"duplicate evaluations: {its}"
        assert continued.record["history"] == longer.record["history"]
        assert np.array_equal(continued.labels, longer.labels)


def test_pretraining_snapshot_is_the_shorter_pretraining(blobs, tiny_cfg, tmp_path):
    """A snapshot kept at epoch 2 of a 3-epoch pretraining is exactly a 2-epoch pretraining
    (constant learning rate, one random stream), and its key says so."""
    x = torch.as_tensor(blobs[0])
    torch.manual_seed(0)
    long = ConvAutoencoder(tuple(x.shape[1:]))
    pretrain(long, x, tiny_cfg.replace(pretrain_epochs=3), make_generator(torch.device("cpu"), 0),
             checkpoint=tmp_path / "pretrain.pt", progress=False, key={"pretrain_epochs": 3}, snapshots=(2,))
    snap = torch.load(tmp_path / "pretrain-epoch2.pt", weights_only=False)
    assert snap["key"] == {"pretrain_epochs": 2} and len(snap["losses"]) == 2
    torch.manual_seed(0)
    short = ConvAutoencoder(tuple(x.shape[1:]))
    losses, _ = pretrain(short, x, tiny_cfg.replace(pretrain_epochs=2), make_generator(torch.device("cpu"), 0),
                         progress=False)
    assert snap["losses"] == losses
    for name, value in short.state_dict().items():
        assert torch.equal(snap["model"][name], value), name
    assert any(not torch.equal(a, b) for a, b in zip(long.state_dict().values(), short.state_dict().values()))


def test_reseeding_moves_an_emptied_centroid_onto_the_farthest_sample_of_the_largest_cluster():
    from decs.bookkeeping import reseed_empty

    z = torch.tensor([[0.0, 0.0], [0.5, 0.0], [0.0, 3.0], [10.0, 0.0], [10.5, 0.0]])
    centroids = torch.nn.Parameter(torch.tensor([[0.0, 0.5], [10.0, 0.0], [100.0, 100.0]]))
    labels = np.array([0, 0, 0, 1, 1])
    opt = torch.optim.Adam([centroids], lr=0.1)
    centroids.sum().backward()
    opt.step()  # Adam now holds moments for every centroid
    moved = reseed_empty(z, centroids, labels, opt)
    assert moved == [2]
    assert torch.equal(centroids.detach()[2], z[2])  # (0, 3) is cluster 0's farthest sample
    assert torch.equal(opt.state[centroids]["exp_avg"][2], torch.zeros(2))
    assert opt.state[centroids]["exp_avg"][0].abs().sum() > 0  # the others keep theirs
    assert reseed_empty(z, centroids, np.array([0, 0, 2, 1, 1]), opt) == []  # nothing empty: nothing moves


def test_reseeding_is_recorded_in_the_history(blobs, tiny_cfg):
    x = torch.as_tensor(blobs[0])
    torch.manual_seed(0)
    model = ConvAutoencoder(tuple(x.shape[1:]))
    z = embed(model.encoder, x)
    centroids, _ = kmeans_init(z, 3, 2, seed=0)
    centroids[2] = z.mean(0) + 1e3  # owns nothing
    cfg = tiny_cfg.replace(maxiter=4, update_interval=4)
    plain = cluster(model.encoder, centroids, x, cfg, make_generator(torch.device("cpu"), 0))
    assert plain.history[0]["cluster_sizes"][2] == 0 and "reseeded" not in plain.history[0]
    torch.manual_seed(0)
    model = ConvAutoencoder(tuple(x.shape[1:]))
    fixed = cluster(model.encoder, centroids, x, cfg.replace(reseed_empty=True), make_generator(torch.device("cpu"), 0))
    assert fixed.history[0]["reseeded"] == [2]


def test_augment_refuses_feature_vectors():
    with pytest.raises(ValueError, match="augment=False"):
        augment(torch.rand(4, 64), make_generator(torch.device("cpu"), 0))


def test_network_enters_checkpoint_keys_only_when_not_conv(blobs, tiny_cfg, tmp_path):
    """A conv pretraining's key is what it always was (existing checkpoints stay valid); an MLP's
    pretraining and clustering keys name their network."""
    x = torch.as_tensor(blobs[0])
    pretrained_autoencoder(x, tiny_cfg, checkpoint_dir=tmp_path / "conv", progress=False)
    key = torch.load(tmp_path / "conv" / "pretrain.pt", weights_only=False)["key"]
    # the settings added later enter only off their defaults (decoder_alignment: tests/test_models.py)
    assert "network" not in key and set(key) == {"seed", "n", "shape", *PRETRAIN_FIELDS} - set(ADDED_LATER)
    flat = x.reshape(len(x), -1)
    cfg = tiny_cfg.replace(augment=False, augment_clustering=False)
    fitted = fit_clusters(flat, 3, cfg, "decs", checkpoint_dir=tmp_path / "mlp", progress=False, network="mlp")
    assert isinstance(fitted.model, MLPAutoencoder) and fitted.result.labels.shape == (len(x),)
    assert torch.load(tmp_path / "mlp" / "pretrain.pt", weights_only=False)["key"]["network"] == "mlp"
    assert torch.load(tmp_path / "mlp" / "decs.pt", weights_only=False)["key"]["network"] == "mlp"


def test_bf16_precision_is_an_opt_in_that_changes_the_run_and_keeps_fp32_scores():
    """precision="bf16" runs the forward passes under bfloat16 autocast (decs.device.autocast):
    a different run from fp32 (so its own name and checkpoint key), q and the loss still fp32,
    and a bad value refused with the choices."""
    from decs.config import get_config
    from decs.device import autocast
    from decs.models import ConvAutoencoder
    from decs.runs import pretrain_key, run_name
    from decs.train import batch_loss

    cfg = get_config("ci")
    bf16 = cfg.replace(precision="bf16")
    assert run_name(cfg, 0) == "ci-seed0" and run_name(bf16, 0) == "ci-seed0+precision=bf16"
    assert "precision" not in pretrain_key(cfg, 0, 10, (1, 16, 16))
    assert pretrain_key(bf16, 0, 10, (1, 16, 16))["precision"] == "bf16"
    torch.manual_seed(0)
    enc = ConvAutoencoder((1, 16, 16)).encoder
    xb, centroids = torch.rand(32, 1, 16, 16), torch.randn(4, 10, requires_grad=True)
    q32, _, loss32 = batch_loss(enc, xb, centroids, cfg, "decs")
    q16, _, loss16 = batch_loss(enc, xb, centroids, bf16, "decs")
    assert q16.dtype == loss16.dtype == torch.float32
    assert not torch.equal(q32, q16) and torch.allclose(q32, q16, atol=0.05)
    with pytest.raises(ValueError, match="precision must be one of"):
        cfg.replace(precision="fp16")


def test_the_keras_forms_of_an_epoch_and_of_adam_and_their_resume(tmp_path):
    """pretrain_epoch="keras": n // batch batches an epoch from a stream of shuffled passes (the
    authors' fit_generator); pretrain_adam="keras": ε̂ = 1e-7 before the bias correction, i.e.
    PyTorch's ε = ε̂ / √(1 − β₂ᵗ). An interrupted run resumes to the uninterrupted one."""
    from decs.config import get_config
    from decs.models import ConvAutoencoder

    x = torch.rand(300, 1, 16, 16)
    base = get_config("ci", batch_size=64, augment=False, pretrain_epochs=2)

    def pretrained(cfg, path):
        torch.manual_seed(0)
        model = ConvAutoencoder((1, 16, 16), filters=(4, 4, 4, 4))
        losses, _ = pretrain(model, x, cfg, make_generator(torch.device("cpu"), 0), checkpoint=path,
                             progress=False, key={"k": cfg.pretrain_epochs})
        return model, losses, torch.load(path, weights_only=False)

    _, _, full = pretrained(base, tmp_path / "full.pt")
    keras = base.replace(pretrain_epoch="keras", pretrain_adam="keras")
    _, _, st = pretrained(keras, tmp_path / "keras.pt")
    assert int(full["optimizer"]["state"][0]["step"]) == 2 * 5       # ⌈300 / 64⌉ = 5 batches a pass
    assert int(st["optimizer"]["state"][0]["step"]) == 2 * 4         # 300 // 64 = 4 an epoch
    assert st["stream"][1] == 3 * 64                                 # 8 = 5 + 3 batches into pass 2
    assert st["optimizer"]["param_groups"][0]["eps"] == pytest.approx(1e-7 / (1 - 0.999 ** 8) ** 0.5)
    # four epochs at once, and two then two more from the checkpoint: the same network
    m4, l4, _ = pretrained(keras.replace(pretrain_epochs=4), tmp_path / "once.pt")
    pretrained(keras, tmp_path / "twice.pt")
    torch.save({**torch.load(tmp_path / "twice.pt", weights_only=False), "key": {"k": 4}}, tmp_path / "twice.pt")
    m22, l22, _ = pretrained(keras.replace(pretrain_epochs=4), tmp_path / "twice.pt")
    assert l4 == l22
    assert all(torch.equal(a, b) for a, b in zip(m4.state_dict().values(), m22.state_dict().values()))
    with pytest.raises(ValueError, match="pretrain_epoch must be one of"):
        base.replace(pretrain_epoch="half")


def test_a_key_with_later_settings_at_their_defaults_matches_an_older_checkpoint(tmp_path):
    """Chapter 10 keys its checkpoints by a whole Config.to_dict(); a field added since (at its
    default) must not invalidate them, a changed one must."""
    from decs.config import get_config
    from decs.models import ConvAutoencoder

    x = torch.rand(64, 1, 16, 16)
    cfg = get_config("ci", batch_size=32, pretrain_epochs=1)
    path = tmp_path / "pretrain.pt"

    def go(key):
        torch.manual_seed(0)
        model = ConvAutoencoder((1, 16, 16), filters=(4, 4, 4, 4))
        return pretrain(model, x, cfg, make_generator(torch.device("cpu"), 0), checkpoint=path,
                        progress=False, key=key)

    go({"k": 1})                                                     # an older checkpoint
    go({"k": 1, "precision": "fp32", "pretrain_adam": "pytorch"})    # the same run: loads
    with pytest.raises(ValueError, match="other settings"):
        go({"k": 1, "precision": "bf16"})
