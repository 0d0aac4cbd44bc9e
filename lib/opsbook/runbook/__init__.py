"""Runbooks: typed YAML files that chain notebooks with parameters, gates and outputs.

One module per job:

- :mod:`~opsbook.runbook.schema`: the pydantic models and :func:`load` (unknown keys
  rejected, schema errors naming step and field);
- :mod:`~opsbook.runbook.templating`: sandboxed, type-keeping Jinja2 templates and
  ``when:`` conditions;
- :mod:`~opsbook.runbook.params`: ``-p``/``-f`` values coerced to their declared types and
  checked (allowed values, bounds, dates, size);
- :mod:`~opsbook.runbook.validation`: every problem of a runbook before anything runs
  (notebooks, declared parameters and outputs, template references, rollbacks);
- :mod:`~opsbook.runbook.compose`: ``uses:`` steps that run another runbook (paths kept
  inside the project, cycles refused, qualified step ids).

The public names of all five are re-exported here: ``from opsbook.runbook import load``.
"""

from __future__ import annotations

from opsbook.runbook.compose import Composition, compose, nest_steps, resolve_uses
from opsbook.runbook.params import (
    MAX_PARAM_BYTES,
    check_approvals,
    check_value,
    coerce_cli_value,
    resolve_parameters,
    value_fits,
)
from opsbook.runbook.schema import (
    MAX_TIMEOUT_S,
    LoadedRunbook,
    ParamSpec,
    ParamType,
    Runbook,
    SecretSpec,
    Step,
    StepDefaults,
    Summary,
    SummaryItem,
    SummarySection,
    discover,
    load,
    project_root_for,
    read_yaml,
)
from opsbook.runbook.templating import (
    TEMPLATE_ROOTS,
    TemplateEnvironment,
    evaluate_condition,
    is_template,
    render,
    template_references,
    unsafe_attributes,
)
from opsbook.runbook.validation import NotebookInfo, check_file, inspect, validate

__all__ = [
    "MAX_PARAM_BYTES",
    "MAX_TIMEOUT_S",
    "TEMPLATE_ROOTS",
    "LoadedRunbook",
    "NotebookInfo",
    "ParamSpec",
    "ParamType",
    "Runbook",
    "SecretSpec",
    "Step",
    "StepDefaults",
    "Summary",
    "SummaryItem",
    "SummarySection",
    "TemplateEnvironment",
    "Composition",
    "check_approvals",
    "check_file",
    "check_value",
    "coerce_cli_value",
    "compose",
    "discover",
    "evaluate_condition",
    "inspect",
    "is_template",
    "load",
    "nest_steps",
    "project_root_for",
    "read_yaml",
    "render",
    "resolve_parameters",
    "resolve_uses",
    "template_references",
    "unsafe_attributes",
    "validate",
    "value_fits",
]
