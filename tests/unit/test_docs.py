"""The docs and the code in step, both ways: every setting, error code, CLI flag and endpoint is documented, and
everything the docs name exists. Nothing in the repository reads outside it."""

import ast
import importlib.util
import re

from tests.conftest import REPO

DOCS = REPO / "docs"


def generator():
    spec = importlib.util.spec_from_file_location("generate", DOCS / "generate.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def text_of(*names: str) -> str:
    return "\n".join((REPO / name).read_text(encoding="utf-8") for name in names)


def test_the_generated_pages_are_up_to_date():
    """docs/configuration.md (every setting) and docs/cli.md (every command and flag) come from the code."""
    for name, make in generator().PAGES.items():
        assert (DOCS / name).read_text(encoding="utf-8") == make(), f"docs/{name} is stale: run docs/generate.py"


def test_every_setting_named_in_the_docs_exists():
    from kb.settings import describe

    known = {env for _, env, _, _ in describe()}
    named = set(re.findall(r"\bKB_[A-Z][A-Z0-9_]*[A-Z0-9]\b", text_of("README.md", *(
        f"docs/{p.name}" for p in DOCS.glob("*.md")))))
    assert named - known == set(), f"the docs name settings that do not exist: {sorted(named - known)}"


def raised_codes() -> set[str]:
    """Every error code the code can answer with: ApiError and DocumentError calls, kb.errors' own codes."""
    from kb import errors
    from web.errors import HTTP_CODES, OTHER_HTTP
    from web.schemas import DocumentPage, DocumentView, InsightsWindow

    codes: set[str] = set()
    for path in [*(REPO / "kb").rglob("*.py"), *(REPO / "web").rglob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if name in ("ApiError", "DocumentError") and node.args:
                code = node.args[0]
                if isinstance(code, ast.Constant):
                    codes.add(code.value)
                elif isinstance(code, ast.JoinedStr):  # invalid_{name} and {name}_out_of_range of k, offset, paging
                    template = "".join(v.value if isinstance(v, ast.Constant) else "{}" for v in code.values)
                    codes.update(template.format(field) for field in ("k", "offset", *DocumentPage.model_fields, *DocumentView.model_fields,
                                                                       *InsightsWindow.model_fields)
                                 if template.format(field) in STATUS_CODES())
    codes.update(cls.code for cls in vars(errors).values() if isinstance(cls, type) and issubclass(cls, errors.KbError)
                 and cls.code not in ("kb_error",))
    codes.discard("not_exportable")  # logged while a model loads, never an answer
    codes.discard("schema_behind")  # `kb db`'s own (a server names the migration as index_mismatch)
    codes.discard("backup_problem")  # `kb backup` and `kb restore`'s own
    codes.discard("invalid_import")  # `kb import`'s own
    codes.discard("cluster_failed")  # `kb db start-local`'s own
    return codes | set(HTTP_CODES.values()) | {OTHER_HTTP}


def STATUS_CODES() -> set[str]:  # noqa: N802 - the table's name
    from web.errors import STATUS

    return set(STATUS)


def test_every_error_code_has_a_status_and_every_status_a_cause():
    from web.errors import HTTP_CODES, OTHER_HTTP

    raised = raised_codes()
    table = STATUS_CODES() | set(HTTP_CODES.values()) | {OTHER_HTTP}
    assert raised - table == set(), f"codes with no HTTP status: {sorted(raised - table)}"
    assert table - raised == set(), f"statuses of codes nothing raises: {sorted(table - raised)}"


def test_docs_api_lists_every_error_code_and_no_other():
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    rows = [line.split("|") for line in api[api.index("## Errors"):].splitlines() if line.startswith("| ")]
    documented = {code for row in rows for code in re.findall(r"`([a-z_]+)`", row[2])}
    table = raised_codes()
    assert table - documented == set(), f"docs/api.md does not list {sorted(table - documented)}"
    assert documented - table == set(), f"docs/api.md lists codes kb never answers with: {sorted(documented - table)}"


def test_docs_api_lists_every_endpoint_and_no_other():
    from kb.settings import Settings
    from web.app import create_app

    app = create_app(Settings.from_env(environ={}), base=object())  # routes only: the base is never used
    routes = {(method, re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)) for rule in app.url_map.iter_rules()
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    api = (DOCS / "api.md").read_text(encoding="utf-8")
    table = api[api.index("## Endpoints"):api.index("## Searching")]
    documented = set(re.findall(r"^\| (GET|POST|DELETE|PUT|PATCH) \| `([^`]+)`", table, re.M))
    assert routes - documented == set(), f"docs/api.md does not list {sorted(routes - documented)}"
    assert documented - routes == set(), f"docs/api.md lists endpoints that do not exist: {sorted(documented - routes)}"


def test_the_readme_is_a_map_and_its_commands_and_pages_exist():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert len(readme.splitlines()) <= 250
    assert "make run" in readme and "make test" in readme
    commands = set(generator().commands())
    named = set(re.findall(r"^\| `kb (\w+)", readme, re.M))
    assert named and named <= commands, named - commands
    for link in re.findall(r"\]\(([^)#]+)\)", readme + text_of(*(f"docs/{p.name}" for p in DOCS.glob("*.md")))):
        if not link.startswith("http"):
            assert (REPO / link).exists() or (DOCS / link).exists(), f"a link to {link}, which does not exist"


def test_nothing_in_the_repository_reads_outside_it():
    """A user's clone has nothing beside it: no test, benchmark or build file may reach outside the repository."""
    outside = re.compile(r"""\.\./shared|parent\s*/\s*["']shared["']|/work/shared""")
    offenders = []
    for path in REPO.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".md", ".toml", ".cfg", ""} and not any(
                part.startswith(".") or part in {"index", "__pycache__", "node_modules"}
                for part in path.relative_to(REPO).parts[:-1]):
            if path.name == "test_docs.py":
                continue
            try:
                text = path.read_text(encoding="utf-8")
            except (UnicodeDecodeError, OSError):
                continue
            offenders += [f"{path.relative_to(REPO)}: {m.group()}" for m in outside.finditer(text)]
    makefile = (REPO / "Makefile").read_text() + (REPO / ".ci" / "run").read_text()
    offenders += [m.group() for m in outside.finditer(makefile)]
    assert not offenders, offenders
