"""lbctl.targets.files: atomic writes survive kill -9, backups, the apply lock."""

from __future__ import annotations

import logging
import os
import re
import stat
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from lbctl.errors import ApplyError, ConfigError, LockedError
from lbctl.targets import files
from lbctl.targets.process import run

ROOT = Path(__file__).resolve().parents[2]

OLD = b"old config\n" * 1000
NEW = b"new config\n" * 50000

# A child that runs atomic_write and SIGKILLs itself at a chosen point.
CRASHER = textwrap.dedent("""
    import os, signal, sys
    from lbctl.targets import files
    point, path = sys.argv[1], sys.argv[2]
    real_write, real_replace = os.write, os.replace
    def die(*_):
        os.kill(os.getpid(), signal.SIGKILL)
    if point == "mid-write":
        def half_write(fd, buf):
            real_write(fd, bytes(buf[: len(buf) // 2]))
            die()
        os.write = half_write
    elif point == "before-fsync":
        os.fsync = die
    elif point == "before-rename":
        os.replace = die
    elif point == "after-rename":
        def rename_then_die(src, dst):
            real_replace(src, dst)
            die()
        os.replace = rename_then_die
    files.atomic_write(path, b"new config\\n" * 50000)
    print("not killed")
""")


@pytest.mark.parametrize("point, survivor", [
    ("mid-write", "old"), ("before-fsync", "old"), ("before-rename", "old"), ("after-rename", "new"),
])
def test_atomic_write_killed_leaves_old_or_new(tmp_path, point, survivor):
    expected = {"old": OLD, "new": NEW}[survivor]
    live = tmp_path / "haproxy.cfg"
    live.write_bytes(OLD)
    result = run([sys.executable, "-c", CRASHER, point, str(live)], timeout=30,
                 env={"PYTHONPATH": str(ROOT)})
    assert result.returncode == -9, result.output
    assert live.read_bytes() == expected, f"live file is neither the {survivor} content nor intact"
    leftovers = files.clean_stale_temps(tmp_path)
    if point != "after-rename":
        assert leftovers == [tmp_path / ".haproxy.cfg.lbctl-tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["haproxy.cfg"]


def test_atomic_write_replaces_and_keeps_mode(tmp_path):
    live = tmp_path / "nginx.conf"
    live.write_text("old")
    live.chmod(0o640)
    files.atomic_write(live, "new")
    assert live.read_text() == "new"
    assert stat.S_IMODE(live.stat().st_mode) == 0o640
    files.atomic_write(live, b"newer", mode=0o600)
    assert live.read_bytes() == b"newer"
    assert stat.S_IMODE(live.stat().st_mode) == 0o600
    assert [p.name for p in tmp_path.iterdir()] == ["nginx.conf"]


def test_atomic_write_new_file_and_symlink(tmp_path):
    fresh = tmp_path / "fresh.cfg"
    files.atomic_write(fresh, "x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o644
    (tmp_path / "available").mkdir()
    real = tmp_path / "available" / "site"
    real.write_text("old")
    link = tmp_path / "site"
    link.symlink_to(real)
    files.atomic_write(link, "new")
    assert link.is_symlink() and real.read_text() == "new"


def test_atomic_write_failure_is_apply_error_and_leaves_no_temp(tmp_path):
    with pytest.raises(ApplyError, match="cannot write"):
        files.atomic_write(tmp_path / "missing-dir" / "x.cfg", "data")
    assert list(tmp_path.iterdir()) == []


def test_clean_stale_temps_only_removes_ours(tmp_path):
    for name in (".a.cfg.lbctl-tmp", ".b.lbctl-tmp", "a.cfg", ".hidden", "c.lbctl-tmp.bak"):
        (tmp_path / name).write_text("x")
    removed = files.clean_stale_temps(tmp_path)
    assert [p.name for p in removed] == [".a.cfg.lbctl-tmp", ".b.lbctl-tmp"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".hidden", "a.cfg", "c.lbctl-tmp.bak"]


def test_sha256_file(tmp_path):
    p = tmp_path / "f"
    assert files.sha256_file(p) is None
    p.write_bytes(b"abc")
    assert files.sha256_file(p) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_backups_keep_newest_n(tmp_path):
    live = tmp_path / "etc" / "haproxy.cfg"
    live.parent.mkdir()
    store = files.BackupStore(tmp_path / "state" / "backup", keep=3)
    saved = []
    for i in range(5):
        live.write_text(f"generation {i}\n")
        saved.append(store.save(live))
    listed = store.list()
    assert [b.id for b in listed] == [b.id for b in reversed(saved[-3:])]
    assert [b.read_bytes() for b in listed] == [b"generation 4\n", b"generation 3\n", b"generation 2\n"]
    assert store.latest() == saved[-1]
    assert all(b.original == live and b.id.endswith(b.sha256[:8]) for b in listed)
    # 3 copies + 3 sidecars, nothing else; the sidecar records path and hash
    assert len(list(store.directory.iterdir())) == 6
    meta = (store.directory / f"{saved[-1].id}.json").read_text()
    assert str(live) in meta and saved[-1].sha256 in meta


def test_backup_of_unchanged_file_is_not_duplicated(tmp_path):
    live = tmp_path / "a.cfg"
    live.write_text("same")
    store = files.BackupStore(tmp_path / "backup")
    first = store.save(live)
    assert store.save(live) == first
    assert store.list() == [first]


def test_backups_are_pruned_per_original(tmp_path):
    store = files.BackupStore(tmp_path / "backup", keep=2)
    a, b = tmp_path / "a.cfg", tmp_path / "b.cfg"
    b.write_text("b0")
    store.save(b)
    for i in range(4):
        a.write_text(f"a{i}")
        store.save(a)
    assert len(store.list(a)) == 2
    assert [x.read_bytes() for x in store.list(b)] == [b"b0"]
    assert store.latest(b).original == b


def test_get_and_restore(tmp_path):
    live = tmp_path / "a.cfg"
    live.write_text("good")
    store = files.BackupStore(tmp_path / "backup")
    backup = store.save(live)
    live.write_text("bad")
    assert store.get(backup.id) == backup
    assert store.restore(backup.id) == live
    assert live.read_text() == "good"


@pytest.mark.parametrize("bad_id", ["20990101T000000.000000Z-deadbeef", "", "../a", ".x"])
def test_unknown_backup_id_is_a_clear_error(tmp_path, bad_id):
    live = tmp_path / "a.cfg"
    live.write_text("x")
    store = files.BackupStore(tmp_path / "backup")
    known = store.save(live)
    with pytest.raises(ConfigError, match=f"unknown backup id .* \\(newest: {known.id}\\)"):
        store.get(bad_id)


def test_corrupt_backup_is_refused(tmp_path):
    live = tmp_path / "a.cfg"
    live.write_text("good")
    store = files.BackupStore(tmp_path / "backup")
    backup = store.save(live)
    backup.path.write_text("tampered")
    with pytest.raises(ApplyError, match="corrupt"):
        store.restore(backup)
    assert live.read_text() == "good"


def test_backup_of_a_file_as_last_read_is_a_link_that_keeps_it_after_a_replace(tmp_path):
    live = tmp_path / "a.cfg"
    live.write_text("served")
    store = files.BackupStore(tmp_path / "backup")
    backup = store.save(live, (files.stat_key(os.stat(live)), "served"))
    assert os.stat(backup.path).st_ino == os.stat(live).st_ino  # no copy
    files.atomic_write(live, "next")  # how lbctl replaces the file: a new inode
    assert backup.read_bytes() == b"served" and live.read_text() == "next"


def test_backup_of_a_file_changed_since_it_was_read_is_a_copy_of_what_is_there(tmp_path):
    live = tmp_path / "a.cfg"
    live.write_text("first")
    known = (files.stat_key(os.stat(live)), "first")
    live.write_text("edited by hand")
    backup = files.BackupStore(tmp_path / "backup").save(live, known)
    assert os.stat(backup.path).st_ino != os.stat(live).st_ino
    assert backup.read_bytes() == b"edited by hand"


def test_backup_of_missing_file_is_apply_error(tmp_path):
    with pytest.raises(ApplyError, match="cannot back up"):
        files.BackupStore(tmp_path / "backup").save(tmp_path / "nope.cfg")


# A child that takes the lock, says so, and holds it until its stdin closes.
HOLDER = textwrap.dedent("""
    import sys
    from lbctl.targets import files
    with files.apply_lock(sys.argv[1], timeout=5):
        print("locked", flush=True)
        sys.stdin.read()
""")


def test_lock_held_by_another_process(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(files, "LOCK_PROGRESS", 0.1)
    caplog.set_level(logging.INFO, logger="lbctl")
    lock = tmp_path / "state" / "haproxy.lock"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(lock)], stdin=subprocess.PIPE,
                              stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline() == "locked\n"
        with pytest.raises(LockedError) as info:
            with files.apply_lock(lock, timeout=0.35, target="haproxy-edge"):
                pytest.fail("lock taken while another process holds it")
        held = re.escape(f"held by pid {holder.pid} since ") + r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00"
        assert re.fullmatch(re.escape(f"another lbctl is applying to haproxy-edge (lock {lock}, ") + held + r"\)",
                            str(info.value))
        lines = [r.getMessage() for r in caplog.records]
        assert re.fullmatch(re.escape(f"haproxy-edge: waiting up to 0.35s for another lbctl's apply to finish "
                                      f"(lock {lock}, ") + held + r"\)", lines[0])
        assert re.fullmatch(r"haproxy-edge: still waiting for the apply lock \(0s of 0.35s, " + held + r"\)", lines[1])
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=10) == 0
    with files.apply_lock(lock, timeout=5, target="haproxy-edge"):
        assert lock.read_text().startswith(f"{os.getpid()} 20")


def test_lock_is_exclusive_in_process_and_retakeable(tmp_path):
    lock = tmp_path / "nginx.lock"
    with files.apply_lock(lock, timeout=1):
        with pytest.raises(LockedError, match=r"another lbctl is applying to nginx \(lock "):
            with files.apply_lock(lock, timeout=0):
                pass
    with files.apply_lock(lock, timeout=0):
        pass
    assert lock.exists() and lock.read_text() == ""
