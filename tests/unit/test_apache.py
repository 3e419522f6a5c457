"""The apache kind without a process: its settings, what its view refuses (one line,
naming the field), how it names routes, what its served() reads back, and its start
command (docs/apache.md)."""

from pathlib import Path

import pytest

from lbctl import config, inventory
from lbctl.errors import ConfigError
from lbctl.render import render
from lbctl.targets import start
from lbctl.targets.apache import view, vhosts
from lbctl.targets.apache.target import served


def desired(**pool):
    raw = {"listeners": {"web": {"address": "127.0.0.1", "port": 18080, "default_pool": "app"}},
           "pools": {"app": {"members": [{"name": "m1", "address": "127.0.0.1", "port": 9001}], **pool}}}
    return raw


def rendered(raw, **options):
    return render(inventory.from_raw(raw), "apache", config.options("apache", options))


def target(raw: dict) -> config.Target:
    return config.target("edge", raw, "targets.edge", Path("/srv/lb"), Path("/srv/lb/state"))


@pytest.mark.parametrize("change,message", [
    (lambda r: r["listeners"]["web"].update(mode="tcp"),
     "listeners.web: apache cannot serve tcp listeners (mod_proxy_connect tunnels only HTTP CONNECT requests); "
     "use a haproxy or nginx target for it"),
    (lambda r: r["pools"]["app"].update(balance="source"),
     "pools.app.balance: apache has no 'source' balancing (it maps only roundrobin and leastconn)"),
    (lambda r: r["pools"]["app"].update(balance="random"),
     "pools.app.balance: apache has no 'random' balancing (it maps only roundrobin and leastconn)"),
    (lambda r: r["pools"]["app"].update(health={"type": "http", "host": "h.example.com"}),
     "pools.app.health.host: apache's mod_proxy_hcheck cannot send a Host header of its own"),
    (lambda r: r["pools"]["app"]["members"][0].update(weight=101),
     "pools.app.members[0].weight: apache's loadfactor is 1 to 100 (got 101)"),
    (lambda r: r["pools"].update({"p" * 85: r["pools"]["app"]}),
     f"pools.{'p' * 85}: apache's balancer names hold at most 84 characters"),
    (lambda r: r["pools"].update({"App": r["pools"]["app"]}),
     "pools: App and app differ only in case, and apache compares balancer names without case"),
    (lambda r: r["listeners"]["web"].update(port=8405),
     "listeners.web: 127.0.0.1:8405 clashes with the balancer-manager on 127.0.0.1:8405 "
     "(set manager in lbctl.yml to another port)"),
    (lambda r: r["pools"]["app"]["members"].extend(
        [{"name": "x" * 70 + "a", "address": "127.0.0.1", "port": 9002},
         {"name": "x" * 70 + "a", "address": "127.0.0.1", "port": 9003}]), None),  # the inventory refuses it
])
def test_what_apache_cannot_do_is_refused_on_one_line(change, message):
    raw = desired()
    change(raw)
    with pytest.raises(ConfigError) as err:
        rendered(raw)
    assert "\n" not in str(err.value)
    if message is not None:
        assert str(err.value) == message


def test_routes_are_member_names_shortened_stably_past_63_bytes():
    assert view.route("web-1") == "web-1"
    long = "m" * 100
    assert len(view.route(long)) == 63 and view.route(long) == view.route(long)
    assert view.route(long) != view.route("m" * 99 + "n")


def test_member_states_weights_and_checks_map_to_balancer_member_flags():
    raw = desired(balance="leastconn", maxconn=60, sticky_cookie="SID",
                  health={"type": "http", "path": "/ready", "expect_status": 204, "interval": "500ms", "rise": 2})
    raw["pools"]["app"]["members"] = [
        {"name": n, "address": "127.0.0.1", "port": 9000 + i, "weight": 10 * (i + 1), "state": s}
        for i, (n, s) in enumerate([("e", "enabled"), ("d", "drain"), ("m", "maint"), ("b", "backup")])]
    text = rendered(raw, threads_per_child=10, max_request_workers=30)
    members = [line.strip() for line in text.splitlines() if line.strip().startswith("BalancerMember")]
    common = "retry=1 connectiontimeout=5000ms timeout=30000ms max=20 hcmethod=GET hcuri=/ready hcexpr=lbctl_204 " \
             "hcinterval=500ms hcpasses=2 hcfails=3"
    assert members == [  # by name
        f'BalancerMember "http://127.0.0.1:9003" route=b loadfactor=40 status=+H {common}',
        f'BalancerMember "http://127.0.0.1:9001" route=d loadfactor=20 status=+N {common}',
        f'BalancerMember "http://127.0.0.1:9000" route=e loadfactor=10 {common}',
        f'BalancerMember "http://127.0.0.1:9002" route=m loadfactor=30 status=+D {common}',
    ]
    assert "        ProxySet lbmethod=bybusyness stickysession=SID growth=8\n" in text
    assert "ProxyHCExpr lbctl_204 {%{REQUEST_STATUS} == 204}\n" in text
    assert "BalancerPersist Off\n" in text and "ServerLimit 6\n" in text


def test_routes_in_order_most_specific_first_per_virtual_host():
    raw = desired()
    raw["pools"]["api"] = {"members": [{"name": "a1", "address": "127.0.0.1", "port": 9100}]}
    raw["listeners"]["web"]["routes"] = [{"host": "api.example.com", "pool": "api"}, {"path": "/api/v1", "pool": "api"},
                                         {"path": "/api", "pool": "app"}]
    text = rendered(raw)
    proxied = [line.strip() for line in text.splitlines() if line.strip().startswith(("ProxyPass ", "ServerName"))]
    assert proxied == [
        "ServerName localhost",
        "ServerName lbctl-default.invalid",
        f'ProxyPass "{view.MANAGER_PATH}" "!"',  # first: no route claims it
        'ProxyPass "/api/v1" "balancer://api/api/v1"', 'ProxyPass "/api" "balancer://app/api"',
        'ProxyPass "/" "balancer://app/"',
        "ServerName api.example.com",  # the host's own route takes all its paths first, as in HAProxy
        f'ProxyPass "{view.MANAGER_PATH}" "!"',
        'ProxyPass "/api/v1" "balancer://api/api/v1"', 'ProxyPass "/api" "balancer://api/api"',
        'ProxyPass "/" "balancer://api/"',
        "ServerName lbctl-manager",
    ]


def test_each_virtual_host_holds_its_balancers_and_a_loopback_manager_lbctl_finds():
    raw = desired()
    raw["pools"]["api"] = {"members": [{"name": "a1", "address": "127.0.0.1", "port": 9100}]}
    raw["pools"]["spare"] = {"members": [{"name": "s1", "address": "127.0.0.1", "port": 9200}]}
    raw["listeners"]["web"]["address"] = "0.0.0.0"
    raw["listeners"]["web"]["routes"] = [{"host": "api.example.com", "pool": "api"}]
    text = rendered(raw)
    assert "BalancerInherit Off\n" in text
    found = vhosts.managed(text, view.MANAGER_PATH)
    assert found == [vhosts.VirtualHost("127.0.0.1:18080", "lbctl-default.invalid", view.MANAGER_PATH, False, ("app",)),
                     vhosts.VirtualHost("127.0.0.1:18080", "api.example.com", view.MANAGER_PATH, False, ("api",))]
    # the manager's path is excluded from proxying before any route, and loopback only
    assert text.count(f'    ProxyPass "{view.MANAGER_PATH}" "!"\n    <Location "{view.MANAGER_PATH}">\n'
                      "        SetHandler balancer-manager\n        Require local\n") == 2
    assert text.index('<Proxy "balancer://spare">') < text.index("<VirtualHost")  # routed nowhere: once, outside
    assert served(text).pools == {"app": {"m1"}, "api": {"a1"}, "spare": {"s1"}}


def test_lbctl_reaches_any_address_listeners_on_loopback_and_tls_ones_over_tls():
    assert [vhosts.connect_to(b) for b in ("0.0.0.0:80", "[::]:80", "10.0.0.5:443", "[2001:db8::1]:80")] == [
        "127.0.0.1:80", "[::1]:80", "10.0.0.5:443", "[2001:db8::1]:80"]
    text = ('<VirtualHost 10.0.0.5:443>\n    ServerName shop.example\n    SSLEngine on\n    <Proxy "balancer://shop">\n'
            f'    </Proxy>\n    <Location "{view.MANAGER_PATH}">\n    </Location>\n</VirtualHost>\n'
            '<VirtualHost 10.0.0.5:80>\n    <Proxy "balancer://shop">\n    </Proxy>\n</VirtualHost>\n')
    assert vhosts.managed(text, view.MANAGER_PATH) == [
        vhosts.VirtualHost("10.0.0.5:443", "shop.example", view.MANAGER_PATH, True, ("shop",))]  # not: no manager


def test_without_the_runtime_api_no_listener_serves_a_manager_and_no_slot_is_spare():
    text = rendered(desired(), runtime_api=False)
    assert "SetHandler balancer-manager" not in text and view.MANAGER_PATH not in text and "growth=" not in text
    assert vhosts.managed(text, view.MANAGER_PATH) == []
    assert "ProxySet lbmethod=byrequests growth=3\n" in rendered(desired(), growth=3)


def test_a_listener_without_default_answers_503_elsewhere():
    raw = desired()
    del raw["listeners"]["web"]["default_pool"]
    raw["listeners"]["web"]["routes"] = [{"path": "/app/", "pool": "app"}]
    # everything but the balancer-manager's path (mod_alias would answer for it first)
    assert '    ProxyPass "/app/" "balancer://app/app/"\n    RedirectMatch 503 "^/(?!!lbctl/balancer-manager)"\n' \
        in rendered(raw)
    assert '    ProxyPass "/app/" "balancer://app/app/"\n    Redirect 503 "/"\n' in rendered(raw, runtime_api=False)


def test_served_reads_listeners_and_enabled_members_back():
    raw = desired()
    raw["pools"]["app"]["members"].append({"name": "off", "address": "127.0.0.1", "port": 9002, "state": "maint"})
    raw["pools"]["app"]["members"].append({"name": "standby", "address": "127.0.0.1", "port": 9003, "state": "backup"})
    got = served(rendered(raw))
    assert got.listeners == frozenset({"web"})
    assert got.pools == {"app": frozenset({"m1", "standby"})}
    assert served(None).listeners == frozenset()


@pytest.mark.parametrize("raw,message", [
    ({"manager": "10.0.0.1:8405"}, "targets.edge.manager: must be a loopback address and port"),
    ({"manager": "127.0.0.1"}, "targets.edge.manager: must be host:port"),
    ({"growth": -1}, "targets.edge.growth: must be"),
    ({"runtime_api": "yes"}, "targets.edge.runtime_api: must be true or false"),
    ({"user": "root; Listen 1"}, "targets.edge.user: must be a name"),
    ({"run_dir": "/run/a b"}, "targets.edge.run_dir: "),
])
def test_bad_settings_name_their_key(raw, message):
    with pytest.raises(ConfigError, match="^" + message.replace(".", r"\.")):
        target({"kind": "apache", "config": "httpd.conf", **raw})


def test_settings_defaults_and_layouts():
    main = target({"kind": "apache", "config": "httpd.conf"})
    assert main.binary == "apache2" and main.options.layout == "main" and main.options.manager == "127.0.0.1:8405"
    assert target({"kind": "apache", "config": "x", "manager": "[::1]:9"}).options.manager == "[::1]:9"
    included = target({"kind": "apache", "config": "sites-enabled/lbctl.conf", "main_config": "apache2.conf"})
    assert included.options.layout == "include" and included.main_config == Path("/srv/lb/apache2.conf")


def test_start_command_whole_file_or_debian_tree():
    whole = target({"kind": "apache", "config": "httpd.conf", "binary": "/opt/apache2"})
    assert start.command(whole) == "/opt/apache2 -f /srv/lb/httpd.conf -k start"
    included = target({"kind": "apache", "config": "sites-enabled/lbctl.conf", "main_config": "apache2.conf",
                       "binary": "/opt/apache2"})
    assert start.command(included) == (
        "env APACHE_CONFDIR=/srv/lb sh -c '[ ! -r \"$0/envvars\" ] || . \"$0/envvars\"; [ -z \"$APACHE_RUN_DIR\" ] "
        "|| mkdir -p \"$APACHE_RUN_DIR\"; exec \"$@\"' /srv/lb /opt/apache2 -d /srv/lb -f /srv/lb/apache2.conf -k start")
