"""Compiled templates are cached in the user's cache directory (issue 11: a render
of 100,000 servers spent about 23 ms compiling the two HAProxy templates): reused
while the template's source is the same, compiled again when it changes, and never
a reason for a render to fail or to run code from a directory others may write to."""

import os

import pytest

from lbctl.render import environment
from lbctl.render.environment import jinja_environment


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    jinja_environment.cache_clear()
    yield tmp_path / "cache" / "lbctl" / "templates"
    jinja_environment.cache_clear()


def render(templates, monkeypatch, compiles: list | None = None, **data) -> str:
    jinja_environment.cache_clear()
    env = jinja_environment(str(templates))
    if compiles is not None:
        original = env.compile
        monkeypatch.setattr(env, "compile", lambda *a, **k: compiles.append(a[1]) or original(*a, **k))
    return env.get_template("x.j2").render(**data)


def test_a_compiled_template_is_reused_until_its_source_changes(tmp_path, monkeypatch, cache):
    (tmp_path / "x.j2").write_text("hello {{ a }}")
    compiles = []
    assert render(tmp_path, monkeypatch, compiles, a=1) == "hello 1" and compiles == ["x.j2"]
    assert len(list(cache.iterdir())) == 1 and oct(cache.stat().st_mode & 0o777) == "0o700"
    compiles.clear()
    assert render(tmp_path, monkeypatch, compiles, a=2) == "hello 2" and compiles == []  # from the cache
    (tmp_path / "x.j2").write_text("bye {{ a }}")
    assert render(tmp_path, monkeypatch, compiles, a=3) == "bye 3" and compiles == ["x.j2"]
    compiles.clear()
    assert render(tmp_path, monkeypatch, compiles, a=4) == "bye 4" and compiles == []


def test_a_damaged_cache_file_is_compiled_again(tmp_path, monkeypatch, cache):
    (tmp_path / "x.j2").write_text("hello {{ a }}")
    render(tmp_path, monkeypatch, a=1)
    (entry,) = cache.iterdir()
    entry.write_bytes(entry.read_bytes()[:40])  # the header and part of the code
    compiles = []
    assert render(tmp_path, monkeypatch, compiles, a=2) == "hello 2" and compiles == ["x.j2"]


def test_no_cache_in_a_directory_others_may_write_to(tmp_path, monkeypatch, cache):
    cache.mkdir(parents=True)
    os.chmod(cache, 0o777)
    (tmp_path / "x.j2").write_text("hello {{ a }}")
    assert environment.cache_dir() is None
    assert render(tmp_path, monkeypatch, a=1) == "hello 1"
    assert list(cache.iterdir()) == []


def test_no_usable_cache_directory_is_no_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))  # not a directory
    (tmp_path / "x.j2").write_text("hello {{ a }}")
    try:
        assert environment.cache_dir() is None
        assert render(tmp_path, monkeypatch, a=1) == "hello 1"
    finally:
        jinja_environment.cache_clear()
