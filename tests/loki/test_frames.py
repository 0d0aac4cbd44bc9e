"""Loki data objects → tidy frames."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from opsbook.errors import ConfigError
from opsbook.loki.frames import (
    matrix_frame,
    scalar_frame,
    series_key,
    streams_frame,
    to_frame,
    vector_frame,
    wide,
)

T = 1_795_824_000  # seconds


def test_streams_rows_are_sorted_and_carry_label_columns():
    data = {
        "resultType": "streams",
        "result": [
            {"stream": {"service": "a", "level": "info"}, "values": [[str(T * 10**9 + 5), "l2"]]},
            {
                "stream": {"service": "b"},
                "values": [[str(T * 10**9 + 9), "l3"], [str(T * 10**9 + 1), "l1"]],
            },
        ],
    }
    frame = streams_frame(data)
    assert list(frame["line"]) == ["l1", "l2", "l3"]
    assert list(frame["ts_ns"]) == [T * 10**9 + 1, T * 10**9 + 5, T * 10**9 + 9]
    assert frame["timestamp"].iloc[0] == pd.Timestamp(T * 10**9 + 1, unit="ns", tz="UTC")
    assert list(frame["service"]) == ["b", "a", "b"]
    assert frame["level"].iloc[1] == "info" and pd.isna(frame["level"].iloc[0])
    assert frame["series"].iloc[1] == '{level="info", service="a"}'


def test_matrix_values_are_floats_including_special_values():
    data = {
        "resultType": "matrix",
        "result": [
            {
                "metric": {"service": "a"},
                "values": [[T, "1.5"], [T + 60, "NaN"], [T + 120, "+Inf"]],
            },
            {"metric": {}, "values": [[T, "-2"]]},
        ],
    }
    frame = matrix_frame(data)
    a = frame[frame["series"] == '{service="a"}']
    assert a["value"].iloc[0] == 1.5
    assert math.isnan(a["value"].iloc[1]) and a["value"].iloc[2] == math.inf
    assert list(a["timestamp"]) == [pd.Timestamp((T + d) * 10**9, tz="UTC") for d in (0, 60, 120)]
    empty_labels = frame[frame["series"] == "{}"]
    assert empty_labels["value"].iloc[0] == -2.0 and pd.isna(empty_labels["service"].iloc[0])


def test_fractional_second_timestamps_keep_milliseconds():
    frame = matrix_frame(
        {"resultType": "matrix", "result": [{"metric": {}, "values": [[T + 0.25, "1"]]}]}
    )
    assert frame["timestamp"].iloc[0] == pd.Timestamp(T * 10**9 + 250_000_000, tz="UTC")


def test_vector_and_scalar():
    vec = vector_frame(
        {
            "resultType": "vector",
            "result": [
                {"metric": {"model": "m1"}, "value": [T, "3"]},
                {"metric": {"model": "m2"}, "value": [T, "4"]},
            ],
        }
    )
    assert dict(zip(vec["model"], vec["value"], strict=True)) == {"m1": 3.0, "m2": 4.0}
    scalar = scalar_frame({"resultType": "scalar", "result": [T, "7"]})
    assert scalar["value"].iloc[0] == 7.0


@pytest.mark.parametrize("kind", ["streams", "matrix", "vector"])
def test_empty_results_give_empty_frames_with_base_columns(kind):
    frame = to_frame({"resultType": kind, "result": []})
    assert frame.empty and "timestamp" in frame.columns and "series" in frame.columns


@pytest.mark.parametrize("data", [{}, {"resultType": "table"}, {"result": []}, []])
def test_not_a_loki_data_object_is_rejected(data):
    with pytest.raises(ConfigError):
        to_frame(data)


def test_wrong_result_type_for_converter():
    with pytest.raises(ConfigError, match="expected a matrix"):
        matrix_frame({"resultType": "streams", "result": []})


def test_series_key_escapes_and_sorts():
    assert series_key({"b": 'say "hi"', "a": "x\\y"}) == '{a="x\\\\y", b="say \\"hi\\""}'


def test_wide_pivots_by_label():
    data = {
        "resultType": "matrix",
        "result": [
            {"metric": {"s": "a"}, "values": [[T, "1"], [T + 60, "2"]]},
            {"metric": {"s": "b"}, "values": [[T + 60, "5"]]},
        ],
    }
    table = wide(matrix_frame(data), by="s")
    assert list(table.columns) == ["a", "b"]
    assert table.loc[pd.Timestamp((T + 60) * 10**9, tz="UTC"), "b"] == 5.0
    assert math.isnan(table.iloc[0]["b"])
    with pytest.raises(ConfigError, match="no column"):
        wide(matrix_frame(data), by="nope")
