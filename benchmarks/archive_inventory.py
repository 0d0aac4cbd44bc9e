"""Inventory speed vs. the shell baseline ``git ls-files | wc -l`` + ``du -s``.

Builds the 14-app demo and a large generated monorepo (default 200 apps, 50k tracked files,
2k commits, untracked node_modules bulk) in a temp dir, then times, in the same run:

* opsbook inventory (one ``git log --name-only`` pass + one scandir walk per app),
* the baseline: ``git ls-files | wc -l`` plus ``du -s`` of the tree,
* a naive per-app approach: one ``git log`` call per app (what the single pass avoids).

Prints medians and ratios; asserts nothing about time.

    .venv/bin/python benchmarks/archive_inventory.py [--apps 200 --files 50000 --repeat 3]
        [--real ../novu:apps,packages,libs]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from opsbook.archive import DEMO_NOW, inventory, make_demo_monorepo, make_large_monorepo


def _median(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def _baseline(repo: Path) -> None:
    subprocess.run(f"git -C '{repo}' ls-files | wc -l", shell=True, check=True, capture_output=True)
    subprocess.run(["du", "-s", str(repo)], check=True, capture_output=True)


def _naive(repo: Path, apps: list[str]) -> None:
    for app in apps:
        subprocess.run(
            ["git", "-C", str(repo), "log", "--format=%at%x09%an", "--", app],
            check=True,
            capture_output=True,
        )


def _row(label: str, repo: Path, repeat: int, dirs: list[str] | None = None) -> None:
    dirs = dirs or ["apps"]
    inv = inventory(repo, dirs, now=DEMO_NOW)
    files = int(
        subprocess.run(
            f"git -C '{repo}' ls-files | wc -l",
            shell=True,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
    )
    apps = [a.path for a in inv.apps]
    t_inv = _median(lambda: inventory(repo, dirs, now=DEMO_NOW), repeat)
    t_base = _median(lambda: _baseline(repo), repeat)
    t_naive = _median(lambda: _naive(repo, apps), max(1, repeat // 2))
    on_disk = sum(a.files for a in inv.apps)
    print(
        f"{label[:8]:<8} {len(apps):>5} {files:>8} {on_disk:>9} {t_inv:>9.3f} {t_base:>9.3f} "
        f"{t_inv / t_base:>8.2f}x {t_naive:>9.3f} {t_naive / t_inv:>8.1f}x"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--apps", type=int, default=200)
    ap.add_argument("--files", type=int, default=50_000)
    ap.add_argument("--commits", type=int, default=2_000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument(
        "--real",
        action="append",
        default=[],
        metavar="PATH:DIR[,DIR]",
        help="also time a local clone with its apps dirs, e.g. ../novu:apps,packages,libs",
    )
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="opsbook-archive-bench-") as tmp:
        start = time.perf_counter()
        demo = make_demo_monorepo(Path(tmp) / "demo")
        t_demo = time.perf_counter() - start
        start = time.perf_counter()
        large = make_large_monorepo(
            Path(tmp) / "large", apps=args.apps, files=args.files, commits=args.commits
        )
        t_large = time.perf_counter() - start
        print(
            f"fixtures: demo {t_demo:.2f}s, large {t_large:.2f}s "
            f"({args.apps} apps, {args.files} files, {args.commits} commits)"
        )
        print(
            f"median of {args.repeat} runs, seconds; ratio = inventory / baseline "
            "(baseline = git ls-files | wc -l + du -s); naive = one git log per app"
        )
        print(
            f"{'repo':<8} {'apps':>5} {'tracked':>8} {'on disk':>9} {'inventory':>9} "
            f"{'baseline':>9} {'ratio':>9} {'naive':>9} {'vs naive':>9}"
        )
        _row("demo", demo, args.repeat)
        _row("large", large, args.repeat)
        for spec in args.real:
            path, _, dirs = spec.rpartition(":")
            _row(Path(path).name, Path(path), args.repeat, dirs.split(","))


if __name__ == "__main__":
    main()
