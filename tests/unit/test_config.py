"""lbctl.yml: every mistake is one line naming the file and the key."""

import pytest

from lbctl import config
from lbctl.errors import ConfigError


def error_of(tmp_path, text: str) -> str:
    path = tmp_path / "lbctl.yml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        config.load(path)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"{path}: ")
    return message.removeprefix(f"{path}: ")


@pytest.mark.parametrize("text,expected", [
    ("targets: {edge: {kind: haproxy}}", "targets.edge.config: is required"),
    ("targets: {edge: {kind: varnish, config: x}}", "targets.edge.kind: must be one of haproxy, nginx"),
    ("targets: {edge: {kind: haproxy, config: x, colour: red}}", "targets.edge: unknown key 'colour'"),
    ("targets: {edge: {kind: haproxy, config: x, probes: [{url: 'ftp://x'}]}}",
     "targets.edge.probes[0].url: must be an http:// or https:// URL (got 'ftp://x')"),
    ("targets: {edge: {kind: haproxy, config: x, stats_socket: 'a;b.sock'}}", "targets.edge.stats_socket: must be an absolute"),
    ("targets: {edge: {kind: haproxy, config: x, slots: -1}}", "targets.edge.slots: must be an integer from 0 to 10000"),
    ("source: {consul: {address: '127.0.0.1:8500'}}", "source.consul: needs services, a tag or a filter"),
    ("source: {consul: {address: 'nope nope', services: [web]}}", "source.consul.address: must be an IPv4 or IPv6"),
    ("source: {consul: {services: ['web;']}}", "source.consul.services[0]: must be a name"),
    ("source: {consul: {services: [web], wait: 20m}}", "source.consul.wait: must be at most 10m"),
    ("guard: {max_removal: 2}", "guard.max_removal: must be a share above 0 and at most 1"),
    ("watch: {max_removal: 0.5}", "watch.max_removal: moved to guard.max_removal"),
    ("guard: {max_removals: 1}", "guard: unknown key 'max_removals'"),
    ("watch: {min_wait: 10s, max_wait: 1s}", "watch.min_wait: must not be longer than max_wait"),
    ("election: {ttl: 5s}", "election.ttl: must be from 10s to 24h"),
    ("election: {key: lbctl/leader.json, consul: {address: '127.0.0.1:8500'}}", "election.key: must not end in an extension"),
    ("election: {}", "election.consul: is required when source.consul is not set"),
    ("extra: 1", "top level: unknown key 'extra'"),
    ("[1, 2]", "top level: must be a mapping"),
    ("targets: [1, 2]", "targets: must be a mapping"),
])
def test_config_errors(tmp_path, text, expected):
    assert error_of(tmp_path, text).startswith(expected)


def test_paths_are_relative_to_the_config_file(tmp_path):
    path = tmp_path / "lbctl.yml"
    path.write_text("source: {inventory: inv.yml}\nstate_dir: state\ntargets: {edge: {kind: haproxy, config: h.cfg}}\n")
    cfg = config.load(path)
    assert cfg.inventory == tmp_path / "inv.yml" and cfg.state_dir == tmp_path / "state"
    edge = cfg.targets["edge"]
    assert (edge.config, edge.state_dir, edge.slots, edge.runtime_api, edge.shared) == (
        tmp_path / "h.cfg", tmp_path / "state" / "edge", 0, True, False)  # servers named after members


EVERY_PATH = """\
source:
  inventory: inv.yml
  consul: {services: [app], token_file: secrets/token, tls: {ca: tls/ca.pem, cert: tls/c.pem, key: tls/k.pem}}
templates: tpl
state_dir: ./state
audit_log: logs/audit.jsonl
election: {consul: {token_file: secrets/election-token}}
targets:
  edge:
    kind: haproxy
    config: run/haproxy.cfg
    binary: bin/haproxy
    master_socket: run/master.sock
    master_log: logs/master.log
    stats_socket: run/admin.sock
    state_file: ../common-state/server-state
  web:
    kind: nginx
    config: conf/upstreams.conf
    main_config: conf/nginx.conf
    binary: nginx
    pid_file: run/nginx.pid
    error_log: logs/error.log
    stream_module: modules/stream.so
    temp_dir: tmp
  f5: {kind: bigip, host: 192.0.2.1, username: admin, password_file: secrets/f5, ca_bundle: tls/f5.pem}
"""


def test_every_path_key_is_relative_to_the_config_file(tmp_path):
    (tmp_path / "etc").mkdir()
    (tmp_path / "etc" / "lbctl.yml").write_text(EVERY_PATH)
    cfg = config.load(tmp_path / "etc" / "lbctl.yml")
    d = tmp_path / "etc"
    edge, web, f5 = cfg.targets["edge"], cfg.targets["web"], cfg.targets["f5"].options
    consul = cfg.consul
    assert (cfg.inventory, cfg.templates, cfg.state_dir, cfg.audit_log) == (
        d / "inv.yml", str(d / "tpl"), d / "state", d / "logs/audit.jsonl")
    assert (consul.token_file, consul.ca, consul.cert, consul.key, cfg.election.consul.token_file) == (
        d / "secrets/token", d / "tls/ca.pem", d / "tls/c.pem", d / "tls/k.pem", d / "secrets/election-token")
    assert (edge.config, edge.binary, edge.master_socket, edge.master_log) == (
        d / "run/haproxy.cfg", str(d / "bin/haproxy"), d / "run/master.sock", d / "logs/master.log")
    assert (edge.options.stats_socket, edge.options.state_file) == (
        str(d / "run/admin.sock"), str(tmp_path / "common-state/server-state"))
    assert (web.config, web.main_config, web.binary) == (d / "conf/upstreams.conf", d / "conf/nginx.conf", "nginx")
    o = web.options
    assert (o.pid_file, o.error_log, o.stream_module, o.temp_dir) == (
        str(d / "run/nginx.pid"), str(d / "logs/error.log"), str(d / "modules/stream.so"), str(d / "tmp"))
    assert (f5.password_file, f5.ca_bundle) == (d / "secrets/f5", d / "tls/f5.pem")


def test_socket_paths_haproxy_cannot_bind_are_refused(tmp_path):
    deep = "run/" + "d" * 90 + "/master.sock"
    message = error_of(tmp_path, f"targets: {{edge: {{kind: haproxy, config: x, master_socket: {deep}}}}}")
    assert message.startswith("targets.edge.master_socket: is longer than the 97 bytes HAProxy accepts")
    message = error_of(tmp_path, f"targets: {{edge: {{kind: haproxy, config: x, stats_socket: {deep}}}}}")
    assert message.startswith("targets.edge.stats_socket: is longer than the 97 bytes")


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config: No such file"):
        config.load(tmp_path / "missing.yml")
    assert error_of(tmp_path, "targets: [\n").startswith("not valid YAML at line 2")
