"""The API's OpenAPI document, with the rules the edge applies to every request written into it:
a request the document allows is one the server takes (the contract, checked by schemathesis)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

from fastapi import FastAPI

# No field takes a NUL (:mod:`distributor.web.controls` refuses one before routing).
NO_NUL = r"^[^\u0000]*$"
Document = dict[str, Any]


def document_maker(app: FastAPI) -> Callable[[], Document]:
    """``app.openapi``: FastAPI's document with the edge's rules, made once."""

    fastapi_document = app.openapi

    def openapi() -> Document:
        if app.openapi_schema is None:
            for schema in _request_schemas(fastapi_document()):  # which keeps it in the app
                _state_no_nul(schema)
        return fastapi_document()

    return openapi


def _request_schemas(document: Document) -> Iterator[Document]:
    """The schemas a request is checked against: its parameters', its body's, and the
    components these refer to (each once); not the responses'."""
    components = document.get("components", {}).get("schemas", {})
    seen: set[str] = set()
    pending: list[Any] = []
    for path in document.get("paths", {}).values():
        for operation in path.values():
            parameters = operation.get("parameters", [])
            pending += [parameter.get("schema", {}) for parameter in parameters]
            for media in operation.get("requestBody", {}).get("content", {}).values():
                pending.append(media.get("schema", {}))
    while pending:
        schema = pending.pop()
        yield schema
        for ref in _refs(schema):
            name = ref.rpartition("/")[2]
            if name not in seen and name in components:
                seen.add(name)
                pending.append(components[name])


def _refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("$ref"), str):
            yield node["$ref"]
        for value in node.values():
            yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def _state_no_nul(node: Any) -> None:
    """Every free text (a string without its own pattern, format or list of values) says so."""
    if isinstance(node, dict):
        free = not node.keys() & {"pattern", "format", "enum", "const", "$ref"}
        if node.get("type") == "string" and free:
            node["pattern"] = NO_NUL
        for value in node.values():
            _state_no_nul(value)
    elif isinstance(node, list):
        for value in node:
            _state_no_nul(value)


def documented_methods(document: Document, path: str) -> list[str] | None:
    """The methods the document gives the path (for a 405's ``Allow``), from its most specific
    template: ``/sends/test`` is an operation of its own, not the send ``{send_id}`` "test".
    None: the document has no such path."""
    matching = [
        (template.count("{"), sorted(method.upper() for method in operations))
        for template, operations in document.get("paths", {}).items()
        if re.fullmatch(re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(template)), path)
    ]
    return min(matching)[1] if matching else None
