"""Fixtures for the pub/sub benchmark tests: one real Redis endpoint and one Bench per module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opsbook.pubsub.endpoint import Endpoint, resolve
from opsbook.pubsub.harness import Bench


@pytest.fixture(scope="module")
def endpoint() -> Iterator[Endpoint]:
    """The default endpoint (127.0.0.1:6379, else a throwaway redis-server)."""
    ep = resolve(None)
    yield ep
    ep.close()


@pytest.fixture(scope="module")
def bench(endpoint: Endpoint) -> Iterator[Bench]:
    with Bench(endpoint, sub_procs=2, pub_procs=2) as b:
        b.warm_up()
        yield b
