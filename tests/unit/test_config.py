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
    ("targets: {edge: {kind: haproxy, config: x, stats_socket: relative.sock}}", "targets.edge.stats_socket: must be an absolute"),
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
    ("extra: 1", "inventory: unknown key 'extra'"),
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


def test_unreadable_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config: No such file"):
        config.load(tmp_path / "missing.yml")
    assert error_of(tmp_path, "targets: [\n").startswith("not valid YAML at line 2")
