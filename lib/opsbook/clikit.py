"""Shared click plumbing for ``opsbook`` and its domain command groups."""

from __future__ import annotations

from typing import Any

import click

from opsbook.errors import OpsbookError
from opsbook.redact import mask_urls


class OpsbookGroup(click.Group):
    """A click group that turns :class:`OpsbookError` into a message and its exit code.

    Used by the top-level ``opsbook`` command and by every domain group, so a domain group
    behaves the same when mounted under ``opsbook`` and when invoked on its own.
    Passwords inside URLs are masked in every message.
    """

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except OpsbookError as exc:
            # a message may quote a parameter: never echo a URL's password
            click.secho(f"error: {mask_urls(exc.message)}", fg="red", err=True)
            if exc.hint:
                click.echo(f"  hint: {mask_urls(exc.hint)}", err=True)
            ctx.exit(exc.exit_code)
