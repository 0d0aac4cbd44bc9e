"""No secret reaches a record in any encoding: declared, read in the kernel, in URLs, short."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest
from markupsafe import escape

from conftest import make_notebook
from opsbook import audit, execute
from opsbook.redact import Redactor, mask_urls, variants

TOKEN = "p\"a<s&s>w\\rd'Zq9-long"
UNDECLARED = "undeclared-Xy7-value"
URL_PW = "s3cr3tPw"
SHORT = "Zq~"

LEAKY = (
    'token_env = "OPSBOOK_TEST_TOKEN"  # declared secret\n'
    'url = "http://localhost"  # a URL that may hold a password\n',
    [
        "import base64, html, json, os, urllib.parse\n"
        "import opsbook\nfrom IPython.display import HTML, display\n"
        "from opsbook.settings import secret",
        "v = os.environ[token_env]\n"
        "print('raw', v)\nprint('json', json.dumps({'t': v}))\n"
        "print('html', html.escape(v))\nprint('url', urllib.parse.quote(v, safe=''))\n"
        "print('b64', base64.b64encode(v.encode()).decode())\n"
        "print('basic', base64.b64encode(('admin:' + v).encode()).decode())\n"
        "display(HTML('<b>' + html.escape(v) + '</b>'))\n"
        "opsbook.record('leak', v)",
        "u = secret('OPSBOOK_UNDECLARED')\nprint('undeclared', u, json.dumps(u))",
        "print('url is', url)\n"
        "user, pw = url.split('//')[1].split('@')[0].split(':')\n"
        "print('auth', base64.b64encode(f'{user}:{pw}'.encode()).decode())",
        "print('short', os.environ['OPSBOOK_SHORT'])",
    ],
)


def forms(value: str) -> set[str]:
    """What a grep of the record looks for: raw, escaped, encoded."""
    return {
        value,
        json.dumps(value)[1:-1],
        html.escape(value),
        str(escape(value)),
        quote(value, safe=""),
        quote_plus(value),
        base64.b64encode(value.encode()).decode(),
    }


@pytest.fixture
def leaky_run(write_runbook, project: Path, audit_dir: Path, monkeypatch: pytest.MonkeyPatch):
    make_notebook(project / "notebooks" / "leaky.ipynb", *LEAKY)
    monkeypatch.setenv("OPSBOOK_TEST_TOKEN", TOKEN)
    monkeypatch.setenv("OPSBOOK_UNDECLARED", UNDECLARED)
    monkeypatch.setenv("OPSBOOK_SHORT", SHORT)
    path = write_runbook("""
    name: leaky
    secrets:
      - {env: OPSBOOK_TEST_TOKEN, help: a token}
      - {env: OPSBOOK_SHORT, help: a short one}
    parameters:
      url: {type: str, default: "http://localhost"}
    steps:
      - id: leak
        notebook: notebooks/leaky.ipynb
        parameters: {token_env: OPSBOOK_TEST_TOKEN, url: "{{ params.url }}"}
    """)
    lines: list[str] = []
    options = execute.RunOptions(
        root=audit_dir, progress_bar=False, echo=lines.append, log_output=True
    )
    result = execute.run(path, {"url": f"http://admin:{URL_PW}@loki:3100"}, options)
    return result, lines


@pytest.mark.notebooks
def test_no_secret_in_any_encoding_in_any_file(leaky_run, audit_dir: Path, capsys) -> None:
    result, lines = leaky_run
    assert result.status == "succeeded", result.data
    needles = forms(TOKEN) | forms(UNDECLARED) | forms(SHORT) | {URL_PW}
    needles.add(base64.b64encode(f"admin:{URL_PW}".encode()).decode())
    needles.add(base64.b64encode(f"admin:{TOKEN}".encode()).decode()[8:-4])  # inside a blob
    files = [p for p in result.folder.rglob("*") if p.is_file()]
    assert {"run.json", "index.html"} <= {p.name for p in files}
    assert {"notebook.ipynb", "report.html", "full.html", "step.log"} <= {p.name for p in files}
    for file in files:
        blob = file.read_bytes()
        for needle in needles:
            assert needle.encode() not in blob, (file.name, needle)
    terminal = "\n".join(lines) + capsys.readouterr().err
    assert all(n not in terminal for n in needles)
    log = (result.folder / "steps/leak/step.log").read_text()
    assert "url is http://admin:***@loki:3100" in log  # masked, not dropped
    data = json.loads((result.folder / "run.json").read_text())
    assert data["parameters"]["url"] == "http://admin:***@loki:3100"
    assert (result.folder / "steps/leak/secrets-read.txt").read_text() == "OPSBOOK_UNDECLARED\n"
    assert data["redaction_warnings"] == [
        "a secret from $OPSBOOK_SHORT is shorter than 4 characters: it was redacted "
        "everywhere, which may also mask unrelated text"
    ]
    assert audit.verify(audit_dir) == []


@pytest.mark.parametrize(
    "encode",
    [
        lambda v: v,
        lambda v: json.dumps(v)[1:-1],
        lambda v: json.dumps(json.dumps(v))[1:-1],
        html.escape,
        lambda v: str(escape(v)),
        lambda v: quote(v, safe=""),
        quote_plus,
        lambda v: base64.b64encode(v.encode()).decode(),
        lambda v: base64.urlsafe_b64encode(v.encode()).decode().rstrip("="),
        lambda v: base64.b64encode(b"x" + v.encode() + b"tail").decode(),
        lambda v: base64.b64encode(b"xy" + v.encode()).decode(),
    ],
)
def test_redactor_covers_encoding(encode, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SOME_TOKEN", TOKEN)
    redactor = Redactor(["SOME_TOKEN"])
    text = f"before {encode(TOKEN)} after"
    redacted = redactor.text(text)
    assert encode(TOKEN) not in redacted and "***" in redacted
    assert redacted.startswith("before ") and redacted.endswith(" after")


def test_url_passwords_masked_whatever_the_parameter() -> None:
    assert (
        mask_urls("loki_url=http://admin:pw@host:3100/x") == "loki_url=http://admin:***@host:3100/x"
    )
    assert mask_urls("redis://:only-pw@127.0.0.1:6379/0") == "redis://:***@127.0.0.1:6379/0"
    assert mask_urls("http://host:3100/no-password") == "http://host:3100/no-password"
    redactor = Redactor()
    redactor.add_from_data({"nested": ["postgres://bob:hunter22@db/x"]})
    basic = base64.b64encode(b"bob:hunter22").decode()
    assert redactor.text(f"Authorization: Basic {basic}; pw=hunter22") == (
        "Authorization: Basic ***; pw=***"
    )


def test_short_secret_redacted_with_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINY", "ab")
    redactor = Redactor(["TINY"])
    assert redactor.text("crab abc") == "cr*** ***c"
    assert redactor.warnings == [
        "a secret from $TINY is shorter than 4 characters: it was redacted everywhere, "
        "which may also mask unrelated text"
    ]
    assert "ab" in variants("ab")


def test_notebook_json_stays_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINY", "e")  # would break JSON keys if redacted as bytes
    redactor = Redactor(["TINY"])
    text = json.dumps({"cells": [{"source": "hello"}], "metadata": {}})
    assert json.loads(redactor.notebook_text(text)) == {
        "cells": [{"source": "h***llo"}],
        "metadata": {},
    }


def test_cli_error_messages_mask_url_passwords(write_runbook, audit_dir: Path) -> None:
    from click.testing import CliRunner

    from opsbook.cli import cli

    path = write_runbook("""
    name: typed
    parameters:
      n: {type: int, default: 1}
    steps:
      - id: gate
        gate: approval
    """)
    result = CliRunner().invoke(cli, ["run", str(path), "-p", "n=http://admin:hunter22@h/"])
    assert result.exit_code == 2
    assert "hunter22" not in result.output and "admin:***@h" in result.output
