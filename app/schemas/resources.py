"""The resources object at the edge: JSON numbers in, exact integers inside, numbers out.

cpu and ram_gb are read as decimals exactly as sent (app/api/exact_numbers.py), with at most
three places, and stored as thousandths, so `0.1 + 0.2` cores is exactly 0.3; no float ever
reaches the database."""

from decimal import Decimal
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, JsonValue, WithJsonSchema

from app.scheduling.resources import Resources


def _json_number(value: Any) -> Any:
    """Quantities are JSON numbers: "2" (a string) or true are mistakes, not two cores."""
    if isinstance(value, str | bool):
        raise ValueError("must be a number")
    return value


MAX_CPU = 100_000
MAX_RAM_GB = 1_000_000
MAX_GPU = 1024


def _published(maximum: int) -> WithJsonSchema:
    """A quantity as it is on the wire: pydantic's own schema of a `Decimal` also offers strings
    (refused here) and puts its bounds under names that are no JSON Schema keywords."""
    return WithJsonSchema({"type": "number", "minimum": 0, "maximum": maximum, "multipleOf": 0.001})


Cores = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, le=MAX_CPU, decimal_places=3, allow_inf_nan=False),
    _published(MAX_CPU),
]
GiB = Annotated[
    Decimal,
    BeforeValidator(_json_number),
    Field(ge=0, le=MAX_RAM_GB, decimal_places=3, allow_inf_nan=False),
    _published(MAX_RAM_GB),
]
Gpus = Annotated[int, Field(ge=0, le=MAX_GPU, strict=True)]

EXAMPLE: dict[str, JsonValue] = {"cpu": 2.5, "ram_gb": 8, "gpu": 1}


class ResourcesIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [EXAMPLE]})

    cpu: Cores = Field(
        description="Cores, 0-100,000: a JSON number with at most 3 decimals (0.001 steps)."
    )
    ram_gb: GiB = Field(
        description="GiB, 0-1,000,000: a JSON number with at most 3 decimals (0.001 steps)."
    )
    gpu: Gpus = Field(description="Whole GPUs, 0-1,024: a JSON integer.")

    def to_domain(self) -> Resources:
        return Resources(int(self.cpu * 1000), int(self.ram_gb * 1000), self.gpu)


class ResourcesOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [EXAMPLE]})

    cpu: float
    ram_gb: float
    gpu: int

    @classmethod
    def of(cls, resources: Resources) -> "ResourcesOut":
        return cls(
            cpu=resources.cpu_millis / 1000,
            ram_gb=resources.ram_millis / 1000,
            gpu=resources.gpu,
        )
