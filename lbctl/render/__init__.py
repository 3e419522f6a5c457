"""Render the model into a target's configuration text.  Pure: no I/O but
reading templates; the same input always gives byte-identical output.

What each kind's templates loop over is its own ``view`` module
(``lbctl/targets/<kind>/view.py``, found through lbctl.kinds); the Jinja2
environment, its filters and the backend line patterns are here."""

from __future__ import annotations

import jinja2

from lbctl import kinds, model
from lbctl.errors import ConfigError
from lbctl.render.environment import jinja_environment


def render(desired: model.Desired, kind: str, options, template_dir: str | None = None,
           cache: dict | None = None) -> str:
    """The whole configuration file of a file ``kind`` (lbctl.kinds.FILE_KINDS).

    ``cache``: a dict kept between calls, for the kind's view to reuse text of
    pools that did not change (HAProxy's backends, lbctl/targets/haproxy/view.py).

    :raises ConfigError: a template is missing or broken, or the model asks for
        something this target cannot do.
    """
    env = jinja_environment(template_dir)
    name, data, rendered = kinds.get(kind).module("view").view(desired, options, env, cache)
    try:
        text = env.get_template(name).render(data, opts=options)
        rendered()
        return text
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name!r} not found in {template_dir or 'the packaged templates'}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from None
