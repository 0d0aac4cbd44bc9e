"""Syntax tree of a LogQL query (plain dataclasses; evaluation lives elsewhere)."""

from __future__ import annotations

from dataclasses import dataclass, field

from opsbook.loki.logql.regex import Regex


@dataclass(frozen=True)
class Matcher:
    """A label matcher ``name op "value"`` (``=``, ``!=``, ``=~``, ``!~``); regexes anchored."""

    name: str
    op: str
    value: str
    regex: Regex | None = None

    def matches(self, value: str) -> bool:
        if self.op == "=":
            return value == self.value
        if self.op == "!=":
            return value != self.value
        assert self.regex is not None
        hit = self.regex.test_full(value)
        return hit if self.op == "=~" else not hit

    def __str__(self) -> str:
        return f"{self.name}{self.op}{_quote(self.value)}"


def _quote(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ----------------------------------------------------------------------------- stages


@dataclass(frozen=True)
class LineFilter:
    """One line filter; ``values`` holds the ``or`` alternatives."""

    op: str  # |=  !=  |~  !~  |>  !>
    values: tuple[str, ...]
    ip: bool = False
    line: int = field(default=0, compare=False)
    col: int = field(default=0, compare=False)


@dataclass(frozen=True)
class LineFilterStage:
    filters: tuple[LineFilter, ...]


@dataclass(frozen=True)
class JsonStage:
    exprs: tuple[tuple[str, str], ...] = ()  # (label, path); empty: extract everything


@dataclass(frozen=True)
class LogfmtStage:
    exprs: tuple[tuple[str, str], ...] = ()
    strict: bool = False
    keep_empty: bool = False


@dataclass(frozen=True)
class RegexpStage:
    pattern: str


@dataclass(frozen=True)
class PatternStage:
    pattern: str


@dataclass(frozen=True)
class UnpackStage:
    pass


@dataclass(frozen=True)
class DecolorizeStage:
    pass


@dataclass(frozen=True)
class LineFormatStage:
    template: str


@dataclass(frozen=True)
class LabelFormatStage:
    # (dst, value, is_template)
    formats: tuple[tuple[str, str, bool], ...]


@dataclass(frozen=True)
class DropStage:
    names: tuple[tuple[str, Matcher | None], ...]


@dataclass(frozen=True)
class KeepStage:
    names: tuple[tuple[str, Matcher | None], ...]


@dataclass(frozen=True)
class LFString:
    matcher: Matcher


@dataclass(frozen=True)
class LFNumber:
    name: str
    op: str  # > >= < <= == !=
    value: float


@dataclass(frozen=True)
class LFDuration:
    name: str
    op: str
    value: int  # ns


@dataclass(frozen=True)
class LFBytes:
    name: str
    op: str
    value: int


@dataclass(frozen=True)
class LFIp:
    name: str
    op: str  # = or !=
    pattern: str


@dataclass(frozen=True)
class LFAnd:
    left: LabelFilter
    right: LabelFilter


@dataclass(frozen=True)
class LFOr:
    left: LabelFilter
    right: LabelFilter


LabelFilter = LFString | LFNumber | LFDuration | LFBytes | LFIp | LFAnd | LFOr


@dataclass(frozen=True)
class LabelFilterStage:
    filter: LabelFilter


Stage = (
    LineFilterStage
    | JsonStage
    | LogfmtStage
    | RegexpStage
    | PatternStage
    | UnpackStage
    | DecolorizeStage
    | LineFormatStage
    | LabelFormatStage
    | DropStage
    | KeepStage
    | LabelFilterStage
)

# ----------------------------------------------------------------------------- expressions


@dataclass(frozen=True)
class LogSelector:
    """``{matchers} | stages...``: a log query, or the inside of a range aggregation."""

    matchers: tuple[Matcher, ...]
    stages: tuple[Stage, ...] = ()


@dataclass(frozen=True)
class Unwrap:
    label: str
    conv: str = ""  # "", "bytes", "duration", "duration_seconds"
    post_filters: tuple[LabelFilter, ...] = ()


@dataclass(frozen=True)
class LogRange:
    selector: LogSelector
    range_ns: int
    offset_ns: int = 0
    unwrap: Unwrap | None = None


@dataclass(frozen=True)
class Grouping:
    without: bool
    labels: tuple[str, ...]


@dataclass(frozen=True)
class RangeAgg:
    op: str
    range: LogRange
    param: float | None = None
    grouping: Grouping | None = None


@dataclass(frozen=True)
class VectorAgg:
    op: str
    expr: Expr
    grouping: Grouping | None = None
    param: int | None = None


@dataclass(frozen=True)
class VectorMatching:
    card: str = "one-to-one"  # one-to-one | many-to-one | one-to-many
    on: bool = False
    labels: tuple[str, ...] = ()
    include: tuple[str, ...] = ()


@dataclass(frozen=True)
class BinOp:
    op: str
    lhs: Expr
    rhs: Expr
    return_bool: bool = False
    matching: VectorMatching = field(default_factory=VectorMatching)


@dataclass(frozen=True)
class Literal:
    value: float


@dataclass(frozen=True)
class VectorLit:
    value: float


@dataclass(frozen=True)
class LabelReplace:
    expr: Expr
    dst: str
    replacement: str
    src: str
    regex: Regex


Expr = LogSelector | RangeAgg | VectorAgg | BinOp | Literal | VectorLit | LabelReplace
