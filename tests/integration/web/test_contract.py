"""The published contract: /openapi.json describes every endpoint, and the server keeps to it.

schemathesis generates requests from the spec (valid ones and, for every parameter and body,
invalid ones) against the real app with the real model and a real, writable index: no 5xx,
every response conforms to the spec (status, content type, body schema), and nothing under
/api/ ever answers with HTML.
"""

from __future__ import annotations

import shutil
from collections import Counter

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

import kb
from kb.ingestion.sync import build_index
from kb.settings import Settings
from tests.conftest import SEED_CORPUS
from web.app import create_app
from web.openapi import spec

KEY = "contract-key"
CASES = 200  # generated cases per operation (fewer where the spec allows fewer distinct requests)
cases_run: Counter = Counter()


@pytest.fixture(scope="module")
def contract_app(tmp_path_factory, embedder):
    root = tmp_path_factory.mktemp("contract")
    shutil.copytree(SEED_CORPUS, root / "corpus")
    config = Settings.from_env(environ={}, corpus_dir=root / "corpus", index_dir=root / "index",
                               api_key=KEY, write_rate_limit="off")
    build_index(config, embedder=embedder)
    return create_app(config, base=kb.open(config, serving=True, embedder=embedder))


@pytest.fixture(scope="module")
def contract(contract_app):
    return schemathesis.openapi.from_wsgi("/openapi.json", contract_app)


OPERATIONS = [(method.upper(), path) for path, item in spec()["paths"].items() for method in item if method != "parameters"]


@pytest.mark.parametrize(("method", "path"), OPERATIONS, ids=[f"{m} {p}" for m, p in OPERATIONS])
def test_every_endpoint_keeps_to_the_contract(contract, method, path):
    operation = contract[path][method]
    # Valid requests and, for each parameter and body, deliberately invalid ones.
    strategy = st.one_of(operation.as_strategy(generation_mode=GenerationMode.POSITIVE),
                         operation.as_strategy(generation_mode=GenerationMode.NEGATIVE))

    @given(case=strategy)
    @settings(max_examples=CASES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    def check(case):
        case.headers = {**(case.headers or {}), "Authorization": f"Bearer {KEY}"}
        # Auth is fixed to the write key here (the hand-written tests cover missing and wrong keys),
        # so schemathesis's own probe with a broken key does not apply. An upload's acceptance
        # depends on what the file holds (a .webp gets 415, a broken PDF 422), which no schema says.
        excluded = [schemathesis.checks.ignored_auth]
        if (method, path) == ("POST", "/api/documents"):
            excluded.append(schemathesis.checks.positive_data_acceptance)
        response = case.call_and_validate(excluded_checks=excluded)
        cases_run[f"{method} {path}"] += 1
        assert response.status_code < 500
        if path.startswith("/api/"):  # JSON, or what the spec says this answer is (an export's JSON lines)
            content_type = {k.lower(): v for k, v in response.headers.items()}.get("content-type", [""])
            content_type = content_type[0] if isinstance(content_type, list) else content_type
            declared = operation.definition.raw["responses"].get(str(response.status_code), {}).get("content") or {}
            assert content_type.split(";")[0] in (set(declared) or {"application/json"}), content_type
            assert "<html" not in response.text.lower()[:200]

    check()
    print(f"{method} {path}: {cases_run[f'{method} {path}']} cases")


def test_the_spec_lists_every_api_route_the_app_serves(contract_app, contract):
    served = {rule.rule.replace("<doc_id>", "{doc_id}") for rule in contract_app.url_map.iter_rules()
              if rule.rule.startswith("/api/")}
    assert served == {path for path in contract.raw_schema["paths"] if path.startswith("/api/")}


def test_the_spec_limits_are_the_code_limits(contract):
    from kb.search.pipeline import MAX_K, MAX_QUERY_CHARS

    parameters = {p["name"]: p["schema"] for p in contract.raw_schema["paths"]["/api/search"]["get"]["parameters"]}
    assert parameters["k"]["maximum"] == MAX_K and parameters["q"]["maxLength"] == MAX_QUERY_CHARS


def test_the_docs_page_shows_every_operation(contract_app, contract):
    page = contract_app.test_client().get("/docs")
    assert page.status_code == 200 and page.mimetype == "text/html"
    html = page.get_data(as_text=True)
    for path, item in contract.raw_schema["paths"].items():
        for method in item:
            if method != "parameters":
                assert f"{method.upper()} {path}" in html
