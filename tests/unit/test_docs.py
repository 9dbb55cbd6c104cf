"""The README documents what the code does: every error code, and nothing in the repository reads outside it."""

import ast
import re

from tests.conftest import REPO

ERROR_CLASSES = {"ApiError", "DocumentError"}


def error_codes() -> set[str]:
    """Every error code a handler can answer with, read from the code itself."""
    codes: set[str] = set()
    for path in [*(REPO / "kb").glob("*.py"), *(REPO / "web").glob("*.py")]:
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            name = getattr(node.func, "id", None) if isinstance(node, ast.Call) else None
            if name in ERROR_CLASSES and len(node.args) >= 2:
                code = node.args[1] if name == "ApiError" else node.args[0]
                if isinstance(code, ast.Constant):
                    codes.add(code.value)
                elif isinstance(code, ast.JoinedStr):  # f"invalid_{info.field_name}": the paging fields
                    from web.schemas import DocumentPage

                    codes.update(f"invalid_{name}" for name in DocumentPage.model_fields)
    from web.errors import _CODES

    codes.update(_CODES.values())
    codes.add("http_error")
    return codes


def test_the_readme_lists_every_error_code():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    codes = error_codes()
    assert len(codes) > 30, "the scan should find the codes"
    missing = sorted(code for code in codes if f"`{code}`" not in readme)
    assert not missing, f"README.md does not list {missing}"


def test_nothing_in_the_repository_reads_outside_it():
    """A user's clone has nothing beside it: no test, benchmark or build file may reach outside the repository."""
    outside = re.compile(r"""\.\./shared|parent\s*/\s*["']shared["']|/work/shared""")
    offenders = []
    for path in REPO.rglob("*"):
        if path.is_file() and path.suffix in {".py", ".md", ".toml", ".cfg", ""} and not any(
                part.startswith(".") or part in {"index", "__pycache__"} for part in path.relative_to(REPO).parts[:-1]):
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


def test_every_refusal_of_the_library_has_an_http_status():
    """kb/library.py names its refusals; web/documents.py alone knows what they are in HTTP."""
    from web.documents import STATUS

    codes = set()
    for node in ast.walk(ast.parse((REPO / "kb" / "library.py").read_text(encoding="utf-8"))):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "DocumentError":
            codes.add(node.args[0].value)
    assert codes and codes <= set(STATUS), codes - set(STATUS)
    assert "status" not in (REPO / "kb" / "library.py").read_text(encoding="utf-8").lower().replace("statuses", "")
