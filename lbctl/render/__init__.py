"""Render the model into a target's configuration text.  Pure: no I/O but
reading templates; the same input always gives byte-identical output."""

from __future__ import annotations

import jinja2

from lbctl import model
from lbctl.errors import ConfigError
from lbctl.render import views
from lbctl.render.environment import jinja_environment

TEMPLATES = {"haproxy": "haproxy.cfg.j2", "nginx": "nginx.conf.j2"}
KINDS = tuple(TEMPLATES)


def render(desired: model.Desired, kind: str, options, template_dir: str | None = None) -> str:
    """The whole configuration file for ``kind`` (haproxy | nginx).

    :raises ConfigError: a template is missing or broken, or the model asks for
        something this target cannot do.
    """
    if kind == "haproxy":
        data = views.haproxy(desired)
        name = TEMPLATES[kind]
    else:
        data = views.nginx(desired, options.layout)
        name = TEMPLATES[kind] if options.layout == "main" else "nginx-http.conf.j2"
    try:
        template = jinja_environment(template_dir).get_template(name)
        return template.render(data, opts=options)
    except jinja2.TemplateNotFound as exc:
        raise ConfigError(f"template {exc.name!r} not found in {template_dir or 'the packaged templates'}") from None
    except jinja2.TemplateSyntaxError as exc:
        raise ConfigError(f"{exc.filename or exc.name}:{exc.lineno}: template error: {exc.message}") from None
    except jinja2.UndefinedError as exc:
        raise ConfigError(f"template {name}: {exc.message}") from None
