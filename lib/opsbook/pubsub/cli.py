"""``opsbook pubsub ...``: check an endpoint, a quick rate sweep, the redis-benchmark baseline."""

from __future__ import annotations

import click

from opsbook.clikit import OpsbookGroup

cli = OpsbookGroup(
    name="pubsub",
    help="Redis pub/sub benchmark: endpoint check, latency sweep, redis-benchmark baseline.",
)

_URL_ENV = click.option(
    "--redis-url-env",
    default="REDIS_URL",
    show_default=True,
    help="NAME of the env var holding the Redis URL (unset: 127.0.0.1:6379 or redis-server)",
)


@cli.command("check")
@_URL_ENV
def check_cmd(redis_url_env: str) -> None:
    """Resolve the endpoint and print what every result is recorded with.

    Example: REDIS_URL=redis://:pw@cache:6379 opsbook pubsub check
    """
    from opsbook.pubsub.endpoint import resolve
    from opsbook.pubsub.harness import Bench

    with resolve(redis_url_env) as endpoint, Bench(endpoint) as bench:
        env = bench.environment()
        info = bench.info()
        limits = bench.admin.config_get("client-output-buffer-limit")
        env.update(
            maxclients=info.get("maxclients"),
            connected_clients=info.get("connected_clients"),
            output_buffer_limits=limits["client-output-buffer-limit"],
        )
    for key, value in env.items():
        click.echo(f"{key:>22}: {value}")


@cli.command("sweep")
@_URL_ENV
@click.option("--rates", default="1000,10000,40000", show_default=True, help="msg/s, comma list")
@click.option("--duration", default=1.0, show_default=True, help="seconds per step")
@click.option("--size", default=1024, show_default=True, help="message size in bytes")
@click.option(
    "--realtime/--no-realtime",
    default=False,
    show_default=True,
    help="SCHED_FIFO for publishers during each step when permitted (a refusal is printed)",
)
def sweep_cmd(redis_url_env: str, rates: str, duration: float, size: int, realtime: bool) -> None:
    """Open-loop latency sweep (1 -> 1) and the knee where p99 crosses 10 ms.

    Example: opsbook pubsub sweep --rates 1000,5000,20000 --duration 2
    """
    from opsbook.errors import ConfigError
    from opsbook.pubsub import scenarios
    from opsbook.pubsub.endpoint import resolve
    from opsbook.pubsub.harness import Bench

    try:
        rate_list = [int(r) for r in rates.split(",") if r.strip()]
    except ValueError:
        raise ConfigError(f"--rates {rates!r} is not a comma list of integers") from None
    scenarios.profile("quick", rates=rate_list, duration_s=duration)  # validates
    with resolve(redis_url_env) as endpoint, Bench(endpoint, realtime=realtime) as bench:
        bench.warm_up()
        steps = scenarios.rate_sweep(bench, rate_list, duration, size=size)
        knee, extra = scenarios.find_knee(bench, steps, duration, size=size)
        table = scenarios.table(steps + extra, scenarios.LATENCY_COLUMNS)
    click.echo(f"endpoint: {endpoint.kind} {endpoint.label}")
    click.echo(table.to_string(index=False))
    click.echo(f"knee: {knee}")
    first = steps[0].summary
    click.echo(
        f"publisher: {first['publisher_wait']}; {first['publisher_cpus']}; "
        f"priority {first['publisher_priority']}"
    )


@cli.command("baseline")
@_URL_ENV
@click.option("--requests", default=100_000, show_default=True, help="redis-benchmark -n")
@click.option("--clients", default=50, show_default=True, help="redis-benchmark -c")
@click.option("--size", default=1024, show_default=True, help="payload bytes")
def baseline_cmd(redis_url_env: str, requests: int, clients: int, size: int) -> None:
    """redis-benchmark PUBLISH round trip against the same endpoint.

    Example: opsbook pubsub baseline --requests 200000
    """
    from opsbook.pubsub import crosscheck
    from opsbook.pubsub.endpoint import resolve

    with resolve(redis_url_env) as endpoint:
        result = crosscheck.redis_benchmark_publish(
            endpoint.params, size=size, requests=requests, clients=clients
        )
    for key, value in result.items():
        click.echo(f"{key:>10}: {value}")
