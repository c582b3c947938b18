"""The server answers as its own OpenAPI document says, on every operation (schemathesis).

The document is loaded from the app's ``/openapi.internal.json`` (the public one and the
replicas' internal routes) and schemathesis generates requests for every operation in it,
valid and invalid ones, and sends them to the WSGI app in-process. ``tests/openapi_hooks.py``
completes the valid ones where JSON Schema cannot tie one field to another.
Every response is checked with schemathesis' default checks: no 5xx, documented status codes,
documented content types and headers, bodies matching the response schemas, invalid requests
refused with 4xx, valid ones accepted. Bounded and deterministic: ``derandomize`` and a fixed
``max_examples`` per operation, so the run takes seconds and always sends the same requests.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

# Registers the hooks that complete what JSON Schema cannot say (see the module).
import tests.openapi_hooks  # noqa: F401

ROOT = Path(__file__).resolve().parents[2]

# Requests per operation and generation mode (positive / negative). The document has about 30
# operations; this keeps the whole file well under a minute on two cores.
MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def conformance_app(make_app: Callable[..., Flask]) -> Flask:
    """An app of its own: the test sends thousands of requests and counts nothing."""
    return make_app()


@pytest.fixture(scope="module")
def api_schema(conformance_app: Flask) -> Any:
    # The settings the stack test uses too (413 among the statuses that refuse invalid data).
    config = SchemathesisConfig.from_path(str(ROOT / "tests" / "schemathesis.toml"))
    return schemathesis.openapi.from_wsgi("/openapi.internal.json", conformance_app, config=config)


@pytest.fixture(autouse=True)
def _node_id_for_schemathesis(request: pytest.FixtureRequest) -> None:
    # schemathesis 4.32's lazy schema reads and rewrites ``request.node._nodeid`` to name each
    # operation's subtest; pytest 9 no longer has that attribute. Seed it with the node id.
    if not hasattr(request.node, "_nodeid"):
        request.node._nodeid = request.node.nodeid


schema = schemathesis.pytest.from_fixture("api_schema")
CASES: dict[str, int] = {}


@pytest.fixture(scope="module", autouse=True)
def _count_cases(api_schema: Any) -> Iterator[None]:
    """After the run: every documented operation was exercised, and how often (``-s`` shows)."""
    yield
    operations = [r.ok().label for r in api_schema.get_all_operations()]
    print(f"\nschemathesis: {sum(CASES.values())} cases over {len(CASES)} operations")
    assert sorted(CASES) == sorted(operations)


@schema.parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_server_conforms_to_its_openapi_document(case: Any) -> None:
    CASES[case.operation.label] = CASES.get(case.operation.label, 0) + 1
    case.call_and_validate()
