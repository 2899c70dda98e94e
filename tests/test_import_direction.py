"""docs/DESIGN.md §2.1: imports flow one way.

kemp_kg never imports torch or kemp_model; kemp_model imports only kemp_kg.schema from kemp_kg;
the contract module imports pyarrow and the standard library only. Checked on the AST of every
source file, so a violation anywhere (even inside a function) fails.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
KG = REPO / "packages" / "kemp-kg" / "src" / "kemp_kg"
MODEL = REPO / "packages" / "kemp-model" / "src" / "kemp_model"


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def sources(root: Path) -> list[Path]:
    files = sorted(root.rglob("*.py"))
    assert files, f"no sources under {root}"
    return files


@pytest.mark.parametrize("path", sources(KG), ids=lambda p: str(p.relative_to(KG)))
def test_kemp_kg_never_imports_torch_or_kemp_model(path: Path) -> None:
    bad = {m for m in imported_modules(path) if m.split(".")[0] in {"torch", "kemp_model"}}
    assert not bad, f"{path} imports {sorted(bad)}"


@pytest.mark.parametrize("path", sources(MODEL), ids=lambda p: str(p.relative_to(MODEL)))
def test_kemp_model_imports_only_the_contract_of_kemp_kg(path: Path) -> None:
    allowed = {"kemp_kg", "kemp_kg.schema"}
    bad = set()
    for module in imported_modules(path):
        if module.split(".")[0] != "kemp_kg":
            continue
        if module in allowed or module.startswith("kemp_kg.schema."):
            continue
        bad.add(module)
    # `from kemp_kg import schema` yields "kemp_kg" and "kemp_kg.schema": both allowed.
    assert not bad, f"{path} imports {sorted(bad)} from kemp_kg; only kemp_kg.schema is allowed"


def test_contract_module_imports_only_pyarrow_and_stdlib() -> None:
    stdlib = set(sys.stdlib_module_names) | {"__future__"}
    mods = {m.split(".")[0] for m in imported_modules(KG / "schema.py")}
    assert mods - stdlib <= {"pyarrow"}, f"schema.py imports {sorted(mods - stdlib - {'pyarrow'})}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    bad = tmp_path / "bad.py"
    bad.write_text("def f():\n    import torch.nn as nn\n    from kemp_kg.index import x\n")
    assert {"torch.nn", "kemp_kg.index", "kemp_kg.index.x"} <= imported_modules(bad)
