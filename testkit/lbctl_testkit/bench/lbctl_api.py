"""The lbctl internals the benchmarks drive, imported in this one place (a module that moves is
fixed here, and in the launchers' source in ``watch.py``)."""

from lbctl import config, deploy, guard, model  # noqa: F401
from lbctl.config import consul as consul_config  # noqa: F401
from lbctl.discovery import checks, consul_model, merge, watcher  # noqa: F401
from lbctl.discovery import consul as consul_client  # noqa: F401
from lbctl.errors import CommandError, LbctlError  # noqa: F401
from lbctl.session import Session  # noqa: F401
from lbctl.targets import filetarget, files, state  # noqa: F401
from lbctl.targets.apache import ctl as apache_ctl  # noqa: F401
from lbctl.targets.bigip.target import BigIPTarget  # noqa: F401
from lbctl.targets.haproxy import cfg as haproxy_cfg  # noqa: F401
from lbctl.targets.haproxy import slots  # noqa: F401
from lbctl.targets.haproxy import target as haproxy_target  # noqa: F401
from lbctl.targets.haproxy.ctl import MasterCLI, parse_servers_state, show_servers_state, socket_command  # noqa: F401
from lbctl.targets.nginx import ctl as nginx_ctl  # noqa: F401
from lbctl.watch import controller, daemon  # noqa: F401
from lbctl.watch.metrics import Metrics  # noqa: F401
