"""``opsbook pubsub`` commands: clean errors with exit codes, and a real endpoint check."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from opsbook.pubsub.cli import cli

from .conftest import FakeServer


def test_bad_url_is_a_clean_error_with_exit_code_2(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", "http://127.0.0.1:6379")
    result = CliRunner().invoke(cli, ["check", "--redis-url-env", "OPSBOOK_TEST_REDIS"])
    assert result.exit_code == 2
    assert "unsupported scheme 'http'" in result.output and "hint:" in result.output


def test_bad_rates_are_refused_before_connecting() -> None:
    result = CliRunner().invoke(cli, ["sweep", "--rates", "1000,fast"])
    assert result.exit_code == 2
    assert "not a comma list of integers" in result.output


@pytest.mark.services
def test_check_prints_the_recorded_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OPSBOOK_TEST_REDIS", raising=False)
    result = CliRunner().invoke(cli, ["check", "--redis-url-env", "OPSBOOK_TEST_REDIS"])
    assert result.exit_code == 0, result.output
    fields = dict(line.split(": ", 1) for line in result.output.strip().splitlines())
    assert {k.strip() for k in fields} >= {"redis_version", "hiredis", "cores", "maxclients"}


def test_a_server_that_is_not_redis_exits_2_without_a_traceback(
    not_redis: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPSBOOK_TEST_REDIS", f"redis://127.0.0.1:{not_redis.port}/0")
    result = CliRunner().invoke(cli, ["check", "--redis-url-env", "OPSBOOK_TEST_REDIS"])
    assert result.exit_code == 2
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert f"the server at redis://127.0.0.1:{not_redis.port}/0 does not speak" in result.output
    assert "Traceback" not in result.output
