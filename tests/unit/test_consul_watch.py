"""The index rules of one watch (docs/upstream.md#consul-blocking-queries), without a server."""

import threading

from lbctl.discovery.consul import Bucket, Watch
from lbctl.errors import DiscoveryError


def make(answers):
    """A watch fed from ``answers`` (index, data) or exceptions; records what it reports."""
    seen, asked = [], []
    done = threading.Event()

    def fetch(index):
        asked.append(index)
        if not answers:
            done.set()
            w.cancel()
            raise DiscoveryError("no more answers")
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    w = Watch("web", fetch, lambda index, data: seen.append(data), lambda key, exc: None, min_interval=0, retry_max=0.01)
    return w, seen, asked, done


def test_index_rules():
    w, seen, asked, done = make([(5, ["a"]), (5, ["a"]), (7, ["a"]), (9, ["b"]), (3, ["b"]), (4, ["c"]),
                                 DiscoveryError("down"), (6, ["c"])])
    w.start()
    assert done.wait(5)
    # the first query never blocks; the same index is no change; a lower index resets to 0
    assert asked[:7] == [0, 5, 5, 7, 9, 0, 4]
    assert seen == [["a"], ["a"], ["b"], ["c"], ["c"]]


def test_zero_index_answers_are_sent_as_one():
    w, seen, asked, done = make([(0, ["a"]), (1, ["a"])])
    w.start()
    assert done.wait(5)
    assert asked == [0, 1, 1]


def test_client_tls_and_token_settings_reach_py_consul(tmp_path, monkeypatch):
    from lbctl.config import consul as consul_config
    from lbctl.discovery.consul import Client

    (tmp_path / "token").write_text("file-token\n")
    settings = consul_config.consul({"address": "consul.example.com:8501", "scheme": "https", "services": ["web"],
                               "tls": {"ca": "ca.pem", "cert": "c.pem", "key": "k.pem"}, "token_file": "token",
                               "datacenter": "dc2"}, tmp_path)
    monkeypatch.delenv("CONSUL_HTTP_TOKEN", raising=False)
    api = Client(settings).api
    assert (api.http.host, api.http.port, api.http.scheme) == ("consul.example.com", 8501, "https")
    assert api.http.verify == str(tmp_path / "ca.pem")  # verification on, with the CA given
    assert api.http.cert == (str(tmp_path / "c.pem"), str(tmp_path / "k.pem"))
    assert api.token == "file-token" and api.dc == "dc2"
    plain = consul_config.consul({"services": ["web"]}, tmp_path)
    assert Client(plain).api.http.verify is True  # on by default


def test_a_ca_bundle_named_in_the_environment_is_taken_once_as_requests_would(tmp_path, monkeypatch):
    from lbctl.config import consul as consul_config
    from lbctl.discovery.consul import Client

    monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(tmp_path / "env-ca.pem"))
    https = {"address": "consul.example.com:8501", "scheme": "https", "services": ["web"]}
    http = Client(consul_config.consul(https, tmp_path)).api.http
    assert http.verify == str(tmp_path / "env-ca.pem") and http.session.trust_env is False
    off = consul_config.consul({**https, "tls": {"verify": False}}, tmp_path)
    assert Client(off).api.http.verify is False  # verification off stays off


def test_the_throttle_lets_a_burst_of_two_through_then_one_per_interval():
    now = [100.0]
    bucket = Bucket(0.1, clock=lambda: now[0])
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]
    assert round(bucket.take(), 6) == 0.1  # the third waits a whole interval, and takes nothing
    now[0] += 0.04
    assert round(bucket.take(), 6) == 0.06
    now[0] += 0.06
    assert bucket.take() == 0.0 and round(bucket.take(), 6) == 0.1


def test_the_throttle_is_full_after_a_quiet_spell_so_the_first_change_is_not_held_back():
    now = [100.0]
    bucket = Bucket(0.1, clock=lambda: now[0])
    bucket.take(), bucket.take()
    now[0] += 60  # a blocking query that waited a minute for the next change
    assert [bucket.take(), bucket.take()] == [0.0, 0.0]  # that change and the next: no wait, but no more
    assert bucket.take() > 0


def test_no_interval_never_waits():
    bucket = Bucket(0.0, clock=lambda: 1.0)
    assert {bucket.take() for _ in range(10)} == {0.0}
