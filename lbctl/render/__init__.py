"""Render the model into a target's configuration text.  Pure: no I/O but
reading templates (and, for ``lbctl render``, the patterns it saves for the next
render: lbctl/render/warm.py); the same input always gives byte-identical output.

What each kind's templates loop over is its own ``view`` module
(``lbctl/targets/<kind>/view.py``, found through lbctl.kinds); the Jinja2
environment, its filters and the backend line patterns are here.  Jinja2 is
imported only when a template is rendered."""

from __future__ import annotations

from lbctl import kinds, model
from lbctl.errors import ConfigError


def render(desired: model.Desired, kind: str, options, template_dir: str | None = None,
           cache: dict | None = None, reuse: bool = False) -> str:
    """The whole configuration file of a file ``kind`` (lbctl.kinds.FILE_KINDS).

    ``cache``: a dict kept between calls, for the kind's view to reuse text of
    pools that did not change (HAProxy's backends, lbctl/targets/haproxy/view.py).
    ``reuse``: render from the patterns an earlier render saved, if they hold, and
    save them (a kind whose view has ``reuse``: lbctl/render/warm.py).

    :raises ConfigError: a template is missing or broken, or the model asks for
        something this target cannot do.
    """
    view = kinds.get(kind).module("view")
    saved = view.reuse(options, template_dir) if reuse and hasattr(view, "reuse") else None
    text = saved.text(desired) if saved is not None else None
    if text is not None:
        return text
    import jinja2

    from lbctl.render.environment import jinja_environment

    env = jinja_environment(template_dir)
    name, data, rendered = view.view(desired, options, env, cache)
    try:
        text = env.get_template(name).render(data, opts=options)
        rendered()
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name!r} not found in {template_dir or 'the packaged templates'}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from None
    if saved is not None:
        saved.keep(env, desired)
    return text
