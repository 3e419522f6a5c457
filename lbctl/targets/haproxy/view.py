"""What haproxy.cfg.j2 loops over, and each backend's text (lbctl.render.lines).  Pure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from lbctl import model
from lbctl.render import lines

if TYPE_CHECKING:
    import jinja2

    from lbctl.render import warm

TEMPLATE = "haproxy.cfg.j2"
BACKEND = "haproxy-backend.j2"


def reuse(options, template_dir: str | None) -> warm.Reuse:
    """The patterns an earlier ``lbctl render`` saved for these templates and options (lbctl/render/warm.py)."""
    from lbctl.render import warm

    return warm.Reuse(template_dir, (TEMPLATE, BACKEND), options, (__file__,))


def view(desired: model.Desired, options, env: jinja2.Environment, cache: dict | None):
    """The template to render, its data, and what to do once it rendered (keep ``cache``).

    ``cache``: a dict kept between calls; backends whose pool is the very same object
    as last time reuse their text (``lbctl watch`` rebuilds only the pools that
    changed).  Once rendered, it holds exactly the pools of this render.
    """
    data = {"listeners": desired.listeners, "pools": desired.pools, "modes": desired.pool_modes()}
    # Each backend comes from haproxy-backend.j2, once per pool object (see ``cache``):
    # one at a time as ``backend_text(p)``, or all of them as ``{{ backends }}``.
    data["backend_text"] = backend_text = backend_texts(env, data["modes"], options, {} if cache is None else cache)
    # All of them joined here, in Python (a call per pool from the template costs jinja's
    # call checks), and only if the template prints them (an override may not).  Without
    # a cache to keep (lbctl render), runs of pools of one shape are made at once.
    if cache is None:
        patterns = lines.backends(env, BACKEND, options)
        data["backends"] = Printed(lambda: patterns.joined(desired.pools, data["modes"], backend_text))
    else:
        data["backends"] = Printed(lambda: "".join(map(backend_text, desired.pools)))

    def keep() -> None:
        if cache is not None:
            cache.clear()
            cache.update(backend_text.used)

    return TEMPLATE, data, keep


class Printed:
    """Text made only if the template prints it."""

    def __init__(self, make) -> None:
        self.make = make

    def __str__(self) -> str:
        return self.make()


def backend_texts(env: jinja2.Environment, modes: dict, options, cache: dict):
    """A ``backend_text(pool)`` for the template that renders one backend, or reuses it.
    Backends are filled in from the template's own line patterns where they can be
    (lbctl/render/lines.py), else rendered by Jinja2."""
    partial = env.get_template(BACKEND)
    patterns = lines.backends(env, BACKEND, options)

    used: dict = {}

    def backend_text(pool: model.Pool) -> str:
        mode = modes[pool.name]
        hit = cache.get(id(pool))
        if hit is None or hit[0] is not pool or hit[1] != mode or hit[2] is not options:
            text = patterns.text(pool, mode)
            hit = (pool, mode, options, partial.render(p=pool, modes=modes, opts=options) if text is None else text)
        used[id(pool)] = hit
        return hit[3]

    backend_text.used = used
    return backend_text
