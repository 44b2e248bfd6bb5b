"""The published schema tells the truth about errors: FastAPI's default 422 body (`detail`) is
never sent by this API, so every 422 is documented with the contract's error body instead."""

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from app.schemas.common import ErrorBody

_ERROR_REF = {"$ref": "#/components/schemas/ErrorBody"}


def install_openapi(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            components.setdefault("ErrorBody", ErrorBody.model_json_schema())
            for item in schema.get("paths", {}).values():
                for operation in item.values():
                    if "422" in operation.get("responses", {}):
                        operation["responses"]["422"] = {
                            "description": "Validation error (see `fields`)",
                            "content": {"application/json": {"schema": _ERROR_REF}},
                        }
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
