"""Every file the package writes goes through decs.files.atomic_write: a reader, or a process
killed mid-write, sees the old file or the new one, never part of one."""
import json
import signal
import subprocess
import sys
import time

import pytest
import torch

from decs.files import (CheckpointError, atomic_write, checkpoint_key, load_checkpoint, read_checkpoint,
                        record_json, save_checkpoint, save_torch, write_record)

# A child that writes two different records over one path, in turn, as fast as it can, and says
# "wrote" after each write. Each record is a few MB, so a write takes long enough to be killed in.
WRITER = r"""
import sys
from decs.files import write_record
path = sys.argv[1]
records = [{"run": name, "history": [{"iteration": i, "loss": i / 7} for i in range(60_000)]} for name in "ab"]
i = 0
while True:
    write_record(records[i % 2], path)
    i += 1
    print("wrote", flush=True)
"""


def _records():  # the child's two records (WRITER builds the same)
    return [{"run": name, "history": [{"iteration": i, "loss": i / 7} for i in range(60_000)]} for name in "ab"]


@pytest.mark.parametrize("delay", [0.0, 0.003, 0.011, 0.029, 0.07])
def test_a_record_killed_mid_write_is_the_old_file_or_the_new_one(tmp_path, delay):
    path = tmp_path / "run.json"
    child = subprocess.Popen([sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "wrote\n"  # one whole record is there; others are being written
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
    finally:
        child.kill()
    assert path.read_text() in [record_json(r) for r in _records()]  # one of the two whole: never torn


def test_a_write_that_fails_leaves_the_old_file_and_no_temporary_file(tmp_path):
    path = tmp_path / "sub" / "x.json"
    atomic_write(path, "old\n")

    def half_then_fail(out):
        out.write(b"new, but only ha")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        atomic_write(path, half_then_fail)
    assert path.read_text() == "old\n"
    assert [p.name for p in path.parent.iterdir()] == ["x.json"]


def test_atomic_write_takes_text_bytes_or_a_writer_and_makes_an_ordinary_file(tmp_path):
    atomic_write(tmp_path / "t.txt", "é\n")
    atomic_write(tmp_path / "b.bin", b"\x00\x01")
    save_torch({"w": torch.arange(3)}, tmp_path / "w.pt")
    assert (tmp_path / "t.txt").read_text(encoding="utf-8") == "é\n"
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    assert torch.equal(torch.load(tmp_path / "w.pt")["w"], torch.arange(3))
    assert (tmp_path / "t.txt").stat().st_mode & 0o044  # readable by others, as open() would make it


def test_write_record_replaces_a_record_and_keeps_its_layout(tmp_path):
    rec = {"a": 1, "history": [{"iteration": 0, "acc": 0.5}]}
    write_record({"old": True}, tmp_path / "r.json")
    write_record(rec, tmp_path / "r.json")
    assert (tmp_path / "r.json").read_text() == record_json(rec)
    assert json.loads((tmp_path / "r.json").read_text()) == rec


def test_a_checkpoint_is_resumed_only_with_its_own_settings(tmp_path):
    path = tmp_path / "c.pt"
    key = checkpoint_key(seed=0, precision="fp32", lr=1e-3)  # a setting at its added-later default drops out
    assert key == {"seed": 0, "lr": 1e-3}
    save_checkpoint(path, {"key": key, "step": 3})
    assert load_checkpoint(path, key, "was trained")["step"] == 3
    with pytest.raises(CheckpointError, match="other settings"):
        load_checkpoint(path, {**key, "lr": 1e-4}, "was trained")
    assert read_checkpoint(tmp_path / "none.pt") is None
    (tmp_path / "torn.pt").write_bytes(path.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="delete it"):
        read_checkpoint(tmp_path / "torn.pt")
