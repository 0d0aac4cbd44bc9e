"""Endpoint resolution and its errors: bad URL, nothing listening, wrong or missing password."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import pytest

from opsbook.pubsub import endpoint as ep_mod
from opsbook.pubsub.endpoint import Endpoint, resolve, start_redis_server
from opsbook.pubsub.errors import BadRedisURL, NotRedis, RedisAuthFailed, RedisUnreachable

from .conftest import FakeServer

pytestmark = pytest.mark.services


@pytest.fixture(scope="module")
def locked() -> Iterator[Endpoint]:
    """A throwaway redis-server that needs a password."""
    ep = start_redis_server(password="letmein-7")
    yield ep
    ep.close()


def test_unset_variable_uses_default_and_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSBOOK_TEST_REDIS", raising=False)
    with resolve("OPSBOOK_TEST_REDIS") as ep:
        assert ep.kind.startswith(("default", "redis-server"))
        assert ep.info["redis_version"]


def test_unreachable_default_starts_a_redis_server(monkeypatch: pytest.MonkeyPatch) -> None:
    port = ep_mod.free_port()
    monkeypatch.setattr(ep_mod, "DEFAULT_URL", f"redis://127.0.0.1:{port}/0")
    with resolve(None) as ep:
        assert ep.kind == "redis-server (started)"
        assert ep.params.port != port
        assert ep.info["redis_version"]


def test_bad_url_in_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", "http://127.0.0.1:6379")
    with pytest.raises(BadRedisURL, match="scheme"):
        resolve("OPSBOOK_TEST_REDIS")


def test_nothing_listening_is_a_clear_unreachable_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", f"redis://127.0.0.1:{ep_mod.free_port()}/0")
    with pytest.raises(RedisUnreachable, match="cannot connect") as info:
        resolve("OPSBOOK_TEST_REDIS")
    assert info.value.hint


def test_wrong_password_is_an_auth_error_without_the_password(
    locked: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", f"redis://:wrong-pw-1@127.0.0.1:{locked.params.port}")
    with pytest.raises(RedisAuthFailed) as info:
        resolve("OPSBOOK_TEST_REDIS")
    assert "wrong-pw-1" not in str(info.value)


def test_missing_password_is_an_auth_error(
    locked: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", f"redis://127.0.0.1:{locked.params.port}")
    with pytest.raises(RedisAuthFailed, match="needs a password"):
        resolve("OPSBOOK_TEST_REDIS")


def test_right_password_works_and_is_never_in_the_label(
    locked: Endpoint, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opsbook.pubsub.harness import Bench

    monkeypatch.setenv("OPSBOOK_TEST_REDIS", f"redis://:letmein-7@127.0.0.1:{locked.params.port}")
    with resolve("OPSBOOK_TEST_REDIS") as ep, Bench(ep, sub_procs=1, pub_procs=1) as bench:
        assert "letmein-7" not in ep.label and "letmein-7" not in str(bench.environment())
        res = bench.step(
            channels=[bench.channel("auth")], subs=[{}], rate=1000, count=200, size=128
        )
        assert res.summary["received"] == 200 and res.summary["lost"] == 0


def test_a_server_that_is_not_redis_is_named_as_such(
    not_redis: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", f"redis://127.0.0.1:{not_redis.port}/0")
    with pytest.raises(NotRedis) as info:
        resolve("OPSBOOK_TEST_REDIS")
    assert info.value.message.startswith(
        f"the server at redis://127.0.0.1:{not_redis.port}/0 does not speak the Redis protocol"
    )
    assert info.value.exit_code == 2


def test_a_port_taken_before_the_server_binds_it_is_retried_on_another(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import socket

    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    busy = taken.getsockname()[1]
    real_free_port = ep_mod.free_port
    picks: list[int] = []

    def racing_free_port(below: int | None = None) -> int:
        port = busy if not picks else real_free_port(below)
        picks.append(port)
        return port

    monkeypatch.setattr(ep_mod, "free_port", racing_free_port)
    try:
        with start_redis_server() as ep:
            assert picks[0] == busy
            assert len(picks) == 2
            assert ep.params.port == picks[1] != busy
            assert ep.info["redis_version"]
    finally:
        taken.close()


def test_a_server_that_cannot_start_says_why_from_its_log() -> None:
    with pytest.raises(RedisUnreachable, match=r"(?s)3 attempts.*no-such-directive") as info:
        start_redis_server(["--no-such-directive", "1"])
    assert "by hand" in str(info.value.hint)


def test_cluster_free_port_leaves_the_bus_port_free() -> None:
    import socket

    for _ in range(20):
        port = ep_mod.free_port(below=55_000)
        assert 20_000 <= port < 55_000
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port + 10_000))


def test_a_peer_that_accepts_and_never_answers_is_unreachable_not_a_hang() -> None:
    import socket

    from opsbook.pubsub.endpoint import probe
    from opsbook.pubsub.resp import ConnParams

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        params = ConnParams(host="127.0.0.1", port=silent.getsockname()[1])
        with pytest.raises(RedisUnreachable, match=r"did not answer PING/INFO within 0\.5 s"):
            probe(params, timeout=0.5)
        silent.setblocking(False)
        accepted = []
        with contextlib.suppress(BlockingIOError):
            while True:
                accepted.append(silent.accept()[0])
        for conn in accepted:
            conn.close()
        assert len(accepted) == 1  # one attempt: no hidden retries multiplying the timeout
