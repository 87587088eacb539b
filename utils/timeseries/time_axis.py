"""The time axis of a `<TimeSeries>`: parsing its time column and writing region bounds back in its units.

Label Studio (web/libs/editor TimeSeries tag) parses a time column with d3's `utcParse(timeFormat)` into
epoch milliseconds (UTC) and serializes region bounds with `utcFormat(timeFormat)`, i.e. as formatted strings.
Without `timeFormat` the column is read as plain numbers (seconds, epoch ms as in Label Studio's
sample-task-sin.csv, anything) and bounds are those numbers; without `timeColumn` the axis is the row index.
`%Q` (epoch ms) and `%s` (epoch s) are d3 directives Python lacks, `%L` is d3's milliseconds.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np
import pandas as pd

_PAD_FLAG = re.compile(r"%[-_0]([a-zA-Z])")


def _python_format(d3_format: str) -> str:
    """d3 -> Python strptime: drop padding flags (strptime accepts unpadded numbers), %L -> %f, %Z -> %z."""
    fmt = _PAD_FLAG.sub(r"%\1", d3_format)
    return fmt.replace("%L", "%f").replace("%Z", "%z")


@dataclass(frozen=True)
class TimeAxis:
    """How one TimeSeries stores time: `time_format` is d3's (empty for numeric or index axes)."""

    time_format: str = ""

    @property
    def is_date(self) -> bool:
        return bool(self.time_format) and self.time_format not in ("%Q", "%s")

    def parse_column(self, raw: pd.Series) -> np.ndarray:
        """Numeric axis values (epoch ms for dates); NaN where a value does not parse."""
        if self.time_format == "%Q":
            return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        if self.time_format == "%s":
            return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64) * 1000.0
        if not self.time_format:
            return pd.to_numeric(raw, errors="coerce").to_numpy(dtype=np.float64)
        parsed = pd.to_datetime(
            raw.astype(str).str.strip(), format=_python_format(self.time_format), errors="coerce", utc=True
        )
        epoch_ns = parsed.to_numpy(dtype="datetime64[ns]").astype(np.int64).astype(np.float64)
        epoch_ns[parsed.isna().to_numpy()] = np.nan
        return epoch_ns / 1e6

    def parse_value(self, value: object) -> float:
        """One region bound from an annotation (a number, or a string formatted like the time column)."""
        if isinstance(value, bool):
            raise ValueError(f"time value {value!r} is not a number or date")
        if isinstance(value, int | float):
            number = float(value)
            if self.time_format == "%s":
                number *= 1000.0
            if not math.isfinite(number):
                raise ValueError(f"time value {value!r} is not finite")
            return number
        if isinstance(value, str):
            parsed = self.parse_column(pd.Series([value]))[0]
            if np.isnan(parsed):
                raise ValueError(f"time value {value!r} does not match timeFormat {self.time_format!r}")
            return float(parsed)
        raise ValueError(f"time value {value!r} is not a number or date")

    def format_value(self, axis_value: float) -> float | int | str:
        """A region bound in what Label Studio stores: the formatted string for dates, else the number."""
        if self.time_format == "%Q":
            return int(round(axis_value))
        if self.time_format == "%s":
            return int(round(axis_value / 1000.0))
        if not self.is_date:
            rounded = round(float(axis_value), 9)
            return int(rounded) if rounded.is_integer() else rounded
        moment = datetime.fromtimestamp(axis_value / 1000.0, tz=UTC)
        fmt = self.time_format.replace("%L", f"{moment.microsecond // 1000:03d}").replace("%Z", "%z")
        return moment.strftime(fmt)
