"""The allowed ranges of bag_player's numeric flags (``--rate``, ``--delay``, ...), in a module of their own so
that the commands that hand such values to bag_player (replay-demo) refuse the same values with the same words
without importing rclpy."""

from __future__ import annotations

import argparse
import math
from dataclasses import dataclass

from xdrcdepth_core.cli_args import finite_float


@dataclass(frozen=True)
class Bounds:
    """The allowed range of a numeric flag, shared by its argparse ``type`` and :func:`options_from_args`,
    so both refuse the same values with the same words."""

    low: float
    high: float
    low_open: bool = False   # ``low`` itself refused (a rate or frequency of 0)
    unit: str = ""

    def error(self, value: float) -> str | None:
        """Why ``value`` is out of range (NaN fails every comparison, so it is checked first), or None."""
        if not math.isfinite(value):
            return f"must be a finite number, got {value:g}"
        if value < self.low or (self.low_open and value == self.low):
            return f"must be {'>' if self.low_open else '>='} {self.low:g}{self.unit}, got {value:g}"
        if value > self.high:
            return f"must be <= {self.high:g}{self.unit}, got {value:g}"
        return None

    def __call__(self, text: str) -> float:
        """argparse ``type``: the float of ``text``, or ``ArgumentTypeError`` (argparse names the flag)."""
        value = finite_float(text)
        error = self.error(value)
        if error:
            raise argparse.ArgumentTypeError(error)
        return value


#: Seconds-valued flags stop at 1e9 s (32 years): bag times are int64 nanoseconds (2**63 ns ~ 9.2e9 s, of
#: which a bag from today already uses 1.7e9 s) and waits must stay below ``threading.TIMEOUT_MAX``.
SECONDS = Bounds(0.0, 1e9, unit=" s")
#: ``--rate``: 1e-6 already stretches one second of bag to 11.6 days; 1e6 plays an hour of bag in 4 ms.
#: Outside, wall targets and ``/clock`` times overflow (``-r 1e-300``: a wait past the platform's time_t).
FLAG_BOUNDS = {"rate": Bounds(1e-6, 1e6), "start_offset": SECONDS, "delay": SECONDS,
               "clock": Bounds(0.0, 1e6, low_open=True, unit=" Hz"), "wait_for_subscribers": SECONDS}
