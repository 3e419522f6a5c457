"""Render the model into a target's configuration text.  Pure: no I/O but
reading templates; the same input always gives byte-identical output."""

from __future__ import annotations

import jinja2

from lbctl import model
from lbctl.errors import ConfigError
from lbctl.render import lines, views
from lbctl.render.environment import jinja_environment

TEMPLATES = {"haproxy": "haproxy.cfg.j2", "nginx": "nginx.conf.j2"}
KINDS = tuple(TEMPLATES)


def render(desired: model.Desired, kind: str, options, template_dir: str | None = None,
           cache: dict | None = None) -> str:
    """The whole configuration file for ``kind`` (haproxy | nginx).

    ``cache`` (HAProxy): a dict kept between calls; backends whose pool is the very
    same object as last time reuse their text (``lbctl watch`` rebuilds only the
    pools that changed).  It then holds exactly the pools of this render.

    :raises ConfigError: a template is missing or broken, or the model asks for
        something this target cannot do.
    """
    if kind == "haproxy":
        data = views.haproxy(desired)
        # Each backend comes from haproxy-backend.j2, once per pool object (see ``cache``):
        # one at a time as ``backend_text(p)``, or all of them as ``{{ backends }}``.
        data["backend_text"] = backend_texts(jinja_environment(template_dir), data["modes"], options,
                                             {} if cache is None else cache)
        # All of them joined here, in Python (a call per pool from the template costs jinja's
        # call checks), and only if the template prints them (an override may not).
        data["backends"] = Printed(lambda: "".join(map(data["backend_text"], desired.pools)))
        name = TEMPLATES[kind]
    else:
        data = views.nginx(desired, options.layout)
        name = TEMPLATES[kind] if options.layout == "main" else "nginx-http.conf.j2"
    try:
        template = jinja_environment(template_dir).get_template(name)
        text = template.render(data, opts=options)
        if cache is not None:
            cache.clear()
            cache.update(data["backend_text"].used)
        return text
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name!r} not found in {template_dir or 'the packaged templates'}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from None


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
    partial = env.get_template("haproxy-backend.j2")
    patterns = lines.backends(env, "haproxy-backend.j2", options)

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
