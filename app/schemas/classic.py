"""The bodies of the classic single-model API (`POST /predict`, `GET /predict/{prediction_id}`),
word for word those of the model servers its clients were written against."""

import uuid
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from app.models.prediction import Prediction
from app.schemas.common import Text
from app.schemas.prediction import PredictIn

ACCEPTED_MESSAGE = "Request received. Processing asynchronously."
PREDICTION_NOT_FOUND = "Prediction ID not found."
PREDICTION_PENDING = "Prediction is still being processed."

_TEXT = Field(
    min_length=1,
    max_length=100_000,
    description="The text for the model: 1-100,000 characters, no NUL. `input`, or `text` as "
    "sentiment demos send it: exactly one of the two.",
)


def _one_of_input_or_text(schema: dict[str, Any]) -> None:
    """The published body: `input` or `text`, a string, exactly one of the two."""
    for name in ("input", "text"):
        branches = schema["properties"][name].pop("anyOf")
        schema["properties"][name].pop("default", None)
        schema["properties"][name] |= next(b for b in branches if b.get("type") != "null")
    schema["oneOf"] = [{"required": ["input"]}, {"required": ["text"]}]
    schema["examples"] = [
        {"input": "The movie was a delight from start to end."},
        {"text": "The movie was a delight from start to end."},
    ]


class ClassicPredictIn(PredictIn):
    input: Annotated[Text, _TEXT] | None = None  # type: ignore[assignment]
    text: Annotated[Text, _TEXT] | None = None

    model_config = ConfigDict(json_schema_extra=_one_of_input_or_text)

    @model_validator(mode="before")
    @classmethod
    def _one_text(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # not an object: the model's own validation says so
        given = [name for name in ("input", "text") if name in data]
        if len(given) != 1:
            raise ValueError("send the text as `input` or as `text`: exactly one of the two")
        if data[given[0]] is None:
            raise ValueError(f"`{given[0]}` must be a string")
        return data

    @model_validator(mode="after")
    def _text_is_the_input(self) -> "ClassicPredictIn":
        if self.input is None:
            self.input = self.text
        return self


def classic_output(prediction: Prediction) -> dict[str, Any]:
    """The model's answer with the input beside it, as single-model servers answer: the mock's
    output already is `{"input", "result"}`; DistilBERT's label and scores get `input` added."""
    return {"input": prediction.input, **(prediction.output or {})}


class ClassicResultOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d",
                    "output": {"input": "hello", "result": "13742"},
                }
            ]
        }
    )

    prediction_id: uuid.UUID
    output: dict[str, Any] = Field(description="The model's answer, with `input` beside it.")


class ClassicAcceptedOut(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "message": ACCEPTED_MESSAGE,
                    "prediction_id": "7d3e1c2b-3333-4a5b-8c9d-0e1f2a3b4c5d",
                }
            ]
        }
    )

    message: str = ACCEPTED_MESSAGE
    prediction_id: uuid.UUID


class ClassicErrorOut(BaseModel):
    """The classic API's own error body, `{"error": "..."}` alone, for an unknown prediction (404)
    and one still processing (400). Its other errors are the platform's (`error` and `code`)."""

    error: str
