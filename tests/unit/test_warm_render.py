"""``lbctl render`` reuses the patterns an earlier render saved (lbctl/render/warm.py,
issue 11): a render whose templates, options and listeners did not change imports
no Jinja2, gives byte for byte what Jinja2 gives, and follows any change to a
template, the options or the listeners; a pool the saved patterns do not cover, a
damaged file or a cache it cannot use only mean rendering with Jinja2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lbctl import config, model
from lbctl.render import lines, render, warm
from lbctl.render.environment import jinja_environment

ROOT = Path(__file__).resolve().parents[2]
PACKAGED = (ROOT / "templates" / "haproxy-backend.j2").read_text()
MAIN = (ROOT / "templates" / "haproxy.cfg.j2").read_text()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    jinja_environment.cache_clear()
    lines._made.clear()
    yield tmp_path / "cache" / "lbctl" / "templates"
    jinja_environment.cache_clear()
    lines._made.clear()


def inventory(pools: int = 20, host: str = "a.example.com") -> dict:
    return {"listeners": {"web": {"port": 18080, "default_pool": "p0", "routes": [{"host": host, "pool": "p1"}]}},
            "pools": {f"p{i}": {"members": [{"name": f"m{m}", "address": f"10.0.{i}.{m + 1}", "port": 80 + m,
                                             "weight": 1 + m} for m in range(3)]} for i in range(pools)}}


def lbctl_render(tmp_path: Path, inv: dict, *args: str) -> tuple[str, bool]:
    """``lbctl render`` of ``inv`` in a fresh interpreter: its output, and whether it imported Jinja2."""
    text, loaded = lbctl_run(tmp_path, inv, *args)
    return text, "jinja2" in loaded


def lbctl_run(tmp_path: Path, inv: dict, *args: str) -> tuple[str, set[str]]:
    """``lbctl render`` of ``inv`` in a fresh interpreter: its output, and the modules it loaded."""
    (tmp_path / "inventory.json").write_text(json.dumps(inv))
    out, modules = tmp_path / "out.cfg", tmp_path / "modules.json"
    code = ("import sys\nfrom lbctl.cli import main\ntry:\n    main(sys.argv[2:])\n"  # no json of its own
            "except SystemExit as exc:\n    assert not exc.code, exc.code\n"
            "open(sys.argv[1], 'w').write('\\n'.join(sys.modules))\n")
    env = {"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "XDG_CACHE_HOME": str(tmp_path / "cache")}
    subprocess.run([sys.executable, "-c", code, str(modules), "render", "-i", str(tmp_path / "inventory.json"),
                    "-t", "haproxy", "-o", str(out), *args], cwd=tmp_path, check=True, env=env,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return out.read_text(), set(modules.read_text().splitlines())


def test_a_warm_render_imports_no_jinja2_and_gives_the_same_bytes(tmp_path):
    first, jinja = lbctl_render(tmp_path, inventory())
    assert jinja and "server m2 10.0.19.3:82 weight 3" in first
    text, loaded = lbctl_run(tmp_path, inventory())
    assert text == first and not loaded & {"jinja2", "json", "hashlib", "socket"}, loaded & {"jinja2", "json", "hashlib", "socket"}
    # other pools of the same shapes: still no Jinja2
    second, jinja = lbctl_render(tmp_path, inventory(pools=30))
    assert not jinja and "backend p29" in second and second.startswith(first[:first.index("backend p0")])


def test_a_changed_template_is_followed(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "haproxy-backend.j2").write_text(PACKAGED)
    before, _ = lbctl_render(tmp_path, inventory(), "--templates", str(templates))
    assert lbctl_render(tmp_path, inventory(), "--templates", str(templates)) == (before, False)
    (templates / "haproxy-backend.j2").write_text(PACKAGED.replace("balance {{ p.balance }}", "balance  {{ p.balance }}"))
    after, jinja = lbctl_render(tmp_path, inventory(), "--templates", str(templates))
    assert jinja and after == before.replace("    balance roundrobin", "    balance  roundrobin")
    assert lbctl_render(tmp_path, inventory(), "--templates", str(templates)) == (after, False)
    (templates / "haproxy.cfg.j2").write_text(MAIN.replace("state-from-file global", "state-from-file  global"))
    main, jinja = lbctl_render(tmp_path, inventory(), "--templates", str(templates))
    assert jinja and main == after.replace("state-from-file global", "state-from-file  global") != after
    # and back to the packaged templates: their own patterns, not the overrides'
    assert lbctl_render(tmp_path, inventory())[0] == before


def test_changed_listeners_are_followed(tmp_path):
    before, _ = lbctl_render(tmp_path, inventory())
    after, jinja = lbctl_render(tmp_path, inventory(host="b.example.com"))
    assert jinja and after == before.replace("a.example.com", "b.example.com")


def desireds() -> list[model.Desired]:
    """Models with pools the saved patterns do not all cover."""
    m = (model.Member("a", "10.0.0.1", 80, 3), model.Member("b", "2001:db8::1", 81, state="drain"),
         model.Member("c", "10.0.0.3", 82, state="maint"), model.Member("d", "10.0.0.4", 83, state="backup"))
    listener = model.Listener("web", 80, default_pool="api", routes=(model.Route("web", host="x.example.com"),))
    sticky = model.Pool("s", m[:1], sticky_cookie="SRV", maxconn=10, health=model.HealthCheck(type="none"))
    return [model.Desired((listener,), (model.Pool("api", m[:1]), model.Pool("web", m[:1]))),
            model.Desired((listener,), (model.Pool("api", m[:1]), model.Pool("web", m))),  # mixed states, IPv6
            model.Desired((listener,), (model.Pool("api", m[:1]), model.Pool("empty"), sticky)),
            model.Desired((listener,), (model.Pool("api", m[2:3]), model.Pool("web", m[3:]))),
            model.Desired((), (sticky,))]


def test_what_the_saved_patterns_give_is_what_jinja2_gives(cache):
    options = config.options("haproxy")
    for _ in range(2):  # the second time with every shape of the first saved
        for desired in desireds():
            expected = render(desired, "haproxy", options)
            assert render(desired, "haproxy", options, reuse=True) == expected
            assert render(desired, "haproxy", options, reuse=True) == expected
    assert len(list(cache.glob("render-*.json"))) == 1


def test_other_options_are_not_given_the_saved_patterns(cache):
    desired = desireds()[0]
    render(desired, "haproxy", config.options("haproxy"), reuse=True)
    other = config.options("haproxy", {"maxconn": 99})
    assert "maxconn 99" in render(desired, "haproxy", other, reuse=True)
    assert warm.Reuse(None, ("haproxy.cfg.j2", "haproxy-backend.j2"), other, ()).text(desired) is None


@pytest.mark.parametrize("main,backend", [
    (MAIN + "{% for p in pools %}# {{ p.name }}\n{% endfor %}", PACKAGED),  # the frame depends on the pools
    (MAIN + "{% if modes is defined %}# modes\n{% endif %}", PACKAGED),  # even without failing when they are not given
    (MAIN.replace("{{ backends -}}", "{{ backends }}{{ backends -}}"), PACKAGED),  # printed twice
    (MAIN.replace("{{ backends -}}", "{{ backends | upper -}}"), PACKAGED),  # not as it is
    (MAIN.replace("global", "{% include 'extra.j2' %}\nglobal"), PACKAGED),
    (MAIN, PACKAGED + "# {{ [1, 2] | random }}\n"),  # chance
])
def test_a_template_whose_text_depends_on_more_is_not_saved(tmp_path, cache, main, backend):
    (tmp_path / "haproxy.cfg.j2").write_text(main)
    (tmp_path / "haproxy-backend.j2").write_text(backend)
    (tmp_path / "extra.j2").write_text("# extra\n")
    desired, options = desireds()[0], config.options("haproxy")
    expected = render(desired, "haproxy", options, str(tmp_path))
    text = render(desired, "haproxy", options, str(tmp_path), reuse=True)
    assert text == expected or "random" in backend  # chance: text that differs each time
    assert list(cache.glob("render-*")) == []


def test_a_damaged_or_foreign_file_means_rendering_with_jinja2(cache):
    desired, options = desireds()[3], config.options("haproxy")
    expected = render(desired, "haproxy", options, reuse=True)
    (saved,) = cache.glob("render-*")
    good = saved.read_bytes()
    for damaged in (good[:len(good) // 2], b"{}", good.replace(b'"name"', b'"nosuch"', 1), b"\xff"):
        saved.write_bytes(damaged)
        assert warm.Reuse(None, ("haproxy.cfg.j2", "haproxy-backend.j2"), options, ()).text(desired) is None
        assert render(desired, "haproxy", options, reuse=True) == expected
        assert saved.read_bytes() == good  # saved again
    assert oct(os.stat(saved).st_mode & 0o777) == "0o600"


def test_no_usable_cache_directory_is_no_error(tmp_path, monkeypatch):
    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    desired, options = desireds()[0], config.options("haproxy")
    assert render(desired, "haproxy", options, reuse=True) == render(desired, "haproxy", options)


def test_each_template_directory_keeps_its_own_patterns(tmp_path):
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "haproxy-backend.j2").write_text(PACKAGED.replace("balance {{ p.balance }}", "balance  {{ p.balance }}"))
    packaged, _ = lbctl_render(tmp_path, inventory())
    overridden, _ = lbctl_render(tmp_path, inventory(), "--templates", str(templates))
    assert lbctl_render(tmp_path, inventory()) == (packaged, False)
    assert lbctl_render(tmp_path, inventory(), "--templates", str(templates)) == (overridden, False)


def test_only_the_newest_files_are_kept(cache, monkeypatch):
    monkeypatch.setattr(warm, "KEEP", 2)
    desired = desireds()[0]
    for maxconn in (10, 11, 12):
        assert f"maxconn {maxconn}\n" in render(desired, "haproxy", config.options("haproxy", {"maxconn": maxconn}),
                                                 reuse=True)
    assert len(list(cache.glob("render-*.json"))) == 2
    other = config.options("haproxy", {"maxconn": 12})
    assert warm.Reuse(None, ("haproxy.cfg.j2", "haproxy-backend.j2"), other,
                      (str(Path(warm.__file__).parents[1] / "targets" / "haproxy" / "view.py"),)).text(desired)
