"""Exact resource arithmetic.

Every quantity is an integer (thousandths of a core, thousandths of a GiB, whole GPUs) so that sums
and differences are exact: `0.1 + 0.2` cores is exactly 300 millis, and a "fits" check can never be
fooled by rounding. Conversion to and from the JSON numbers happens only at the schema edge.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Resources:
    """A request or a capacity: milli-cores, milli-GiB and whole GPUs."""

    cpu_millis: int = 0
    ram_millis: int = 0
    gpu: int = 0

    @classmethod
    def zero(cls) -> Resources:
        return cls(0, 0, 0)

    def __add__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis + other.cpu_millis,
            self.ram_millis + other.ram_millis,
            self.gpu + other.gpu,
        )

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.cpu_millis - other.cpu_millis,
            self.ram_millis - other.ram_millis,
            self.gpu - other.gpu,
        )

    def fits_in(self, other: Resources) -> bool:
        """True when every dimension is <= the same dimension of `other`."""
        return (
            self.cpu_millis <= other.cpu_millis
            and self.ram_millis <= other.ram_millis
            and self.gpu <= other.gpu
        )

    def is_zero(self) -> bool:
        return self.cpu_millis == 0 and self.ram_millis == 0 and self.gpu == 0

    @staticmethod
    def sum(items: Iterable[Resources]) -> Resources:
        return total(items)


def total(items: Iterable[Resources]) -> Resources:
    """Sum of many values; adds plain ints so a large sum allocates one object, not one per item."""
    cpu = ram = gpu = 0
    for item in items:
        cpu += item.cpu_millis
        ram += item.ram_millis
        gpu += item.gpu
    return Resources(cpu, ram, gpu)
