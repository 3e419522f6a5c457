import pytest

from lbctl import validate as v
from lbctl.errors import ConfigError


@pytest.mark.parametrize("value", ["web", "web-1", "a.b_c", "_x", "9lives"])
def test_ident_accepts_safe_names(value):
    assert v.ident(value, "p") == value


@pytest.mark.parametrize("value", ["", "-web", "web 1", "web;", "we\nb", "wéb", "x" * 129, 5, None, "{x}"])
def test_ident_rejects_everything_else(value):
    with pytest.raises(ConfigError, match=r"^p: must be a name"):
        v.ident(value, "p")


@pytest.mark.parametrize("value,expected", [
    ("10.0.0.1", "10.0.0.1"), ("::1", "::1"), ("FD00:0::51", "fd00::51"),
    ("App.Example.COM", "app.example.com"), ("localhost", "localhost"), ("a-1.b", "a-1.b"),
])
def test_address_normalizes(value, expected):
    assert v.address(value, "p") == expected


@pytest.mark.parametrize("value", [
    "10.0.0.256", "010.0.0.1", "1.2.3", "1.2.3.4 ", " 1.2.3.4", "1.2.3.4\n", "fe80::1%eth0", "-a.b",
    "a..b", "a_b.c", "x" * 64 + ".com", "1.2.3.4;", "host name", "", 1234, "a.b\nserver x 1.2.3.4:80",
    "1.2.3.4\x00", "12.34",
])
def test_address_rejects(value):
    with pytest.raises(ConfigError, match=r"^p: must be an IPv4 or IPv6 address or an RFC 1123 host name"):
        v.address(value, "p")


@pytest.mark.parametrize("value", [0, 65536, -1, "80", 80.0, True, None])
def test_port_range_and_type(value):
    with pytest.raises(ConfigError, match=r"must be an integer from 1 to 65535"):
        v.port(value, "p")


@pytest.mark.parametrize("value,ms", [("250ms", 250), ("2s", 2000), ("1m", 60000), ("1h", 3600000), (3, 3000), ("24h", 86400000)])
def test_durations(value, ms):
    assert v.duration_ms(value, "p") == ms


@pytest.mark.parametrize("value", ["0s", "2 s", "1d", "-1s", "25h", "1.5s", "", True, 2.0])
def test_bad_durations(value):
    with pytest.raises(ConfigError, match="must be a duration"):
        v.duration_ms(value, "p")


@pytest.mark.parametrize("value", ["/", "/api/v1/", "/a-b_c.d~e:f@g+h=i,j"])
def test_url_paths(value):
    assert v.url_path(value, "p") == value


@pytest.mark.parametrize("value", ["api", "/a b", "/a;b", "/a{", "/a'", '/a"', "/a\nb", "/a#b", "/a$b", "/%2e"])
def test_bad_url_paths(value):
    with pytest.raises(ConfigError, match="must be a URL path"):
        v.url_path(value, "p")


def test_file_paths_refuse_parent_segments():
    assert v.file_path("/etc/ssl/a.pem", "p") == "/etc/ssl/a.pem"
    with pytest.raises(ConfigError, match="must not contain '..'"):
        v.file_path("/etc/../shadow", "p")


def test_meta_values_cannot_carry_config_syntax():
    assert v.meta({"zone": "eu-west-1a", "url": "http://x/y?z=1"}, "p") == (("url", "http://x/y?z=1"), ("zone", "eu-west-1a"))
    for bad in ["a;b", "a\nb", "a{b", 'a"b', "a#b", "a$b", "é"]:
        with pytest.raises(ConfigError, match=r"^p\.k: must be printable text"):
            v.meta({"k": bad}, "p")


def test_tags_sorted_and_deduplicated():
    assert v.tags(["v2", "canary", "v2"], "p") == ("canary", "v2")
    with pytest.raises(ConfigError, match=r"^p\[1\]: must be a tag"):
        v.tags(["ok", "no spaces"], "p")


def test_error_values_are_shown_escaped_and_short():
    with pytest.raises(ConfigError) as err:
        v.ident("x\n" * 100, "p")
    message = str(err.value)
    assert "\n" not in message and "\\n" in message and len(message) < 200
