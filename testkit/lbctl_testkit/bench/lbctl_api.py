"""The lbctl internals the benchmarks drive, imported in this one place (a module that moves is
fixed here, and in the launchers' source in ``watch.py``)."""

from lbctl import config, controller, deploy, guard, haproxy_cfg, model, slots  # noqa: F401
from lbctl.cli import Session  # noqa: F401
from lbctl.discovery import consul as consul_client, consul_model, merge  # noqa: F401
from lbctl.errors import CommandError  # noqa: F401
from lbctl.metrics import Metrics  # noqa: F401
from lbctl.targets import files, nginx_ctl  # noqa: F401
from lbctl.targets import haproxy as haproxy_target  # noqa: F401
from lbctl.targets.bigip import BigIPTarget  # noqa: F401
from lbctl.targets.haproxy_ctl import MasterCLI, parse_servers_state, show_servers_state, socket_command  # noqa: F401
