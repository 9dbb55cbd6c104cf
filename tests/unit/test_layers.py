"""Packages that show the architecture: each imports only those below it, and kb never imports the web layer."""

import ast

from tests.conftest import REPO

# Lowest first. A module may import its own package and any package of a lower rank, never a higher one.
RANKS = {"kb.settings": 0, "kb.errors": 0, "kb.schemas": 0, "kb.client": 1, "kb.documents": 1, "kb.stores": 2,
         "kb.embedding": 3, "kb.search": 4, "kb.ingestion": 5, "kb.evaluation": 6, "kb.insights": 6, "kb": 7, "kb.agents": 8, "kb.cli": 9}


def part(module: str) -> str:
    """The package (or loose module) a dotted kb module belongs to."""
    parts = module.split(".")
    if len(parts) >= 2 and f"kb.{parts[1]}" in RANKS:
        return f"kb.{parts[1]}"
    return "kb"


def imports(path) -> set[str]:
    """Every kb module the file imports, at its top or inside a function."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
            found.update(name for name in names[:1] if name == "kb" or name.startswith(("kb.", "web.", "flask")))
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] in ("kb", "web", "flask"))
    return found


def test_every_package_imports_only_those_below_it():
    wrong = []
    for path in sorted((REPO / "kb").rglob("*.py")):
        module = ".".join(path.relative_to(REPO).with_suffix("").parts).removesuffix(".__init__")
        mine = part(module)
        for name in imports(path):
            if name.split(".")[0] in ("web", "flask"):
                wrong.append(f"{module} imports {name}: kb never imports the web layer")
            elif name.startswith("kb") and RANKS[part(name)] > RANKS[mine]:
                wrong.append(f"{module} ({mine}) imports {name} ({part(name)}), a package above it")
    assert not wrong, "\n".join(wrong)


def test_only_a_handful_of_modules_stay_loose_at_the_top():
    loose = sorted(path.name for path in (REPO / "kb").glob("*.py"))
    assert loose == ["__init__.py", "cli.py", "errors.py", "schemas.py", "settings.py"], loose
    for folder in (REPO / "kb").iterdir():
        if folder.is_dir() and folder.name != "__pycache__":
            assert (folder / "__init__.py").exists(), f"{folder} is a package with a docstring that says what it is"
            assert ast.get_docstring(ast.parse((folder / "__init__.py").read_text())), folder
