"""opsbook: parameterised Jupyter runbooks with an immutable audit trail."""

from opsbook.errors import OpsbookError
from opsbook.record import MIME_TYPE, record, results

__all__ = ["MIME_TYPE", "OpsbookError", "record", "results", "__version__"]
__version__ = "0.1.0"
