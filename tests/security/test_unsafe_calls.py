"""No unsafe deserialisation or code execution anywhere in the packages (an AST scan).

Forbidden in `packages/*/src`: importing pickle-family modules; `eval`, `exec`, `compile`,
`literal_eval`; `torch.load` without a literal `weights_only=True`; `torch.save` (pickle inside:
checkpoints are safetensors + JSON); `numpy.load(allow_pickle=True)`; `yaml.load` without a safe
loader; `os.system`/`os.popen` and `subprocess` with `shell=True`. The scanner itself is tested on
snippets that break each rule, so this test fails when a rule stops firing.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SOURCES = sorted((REPO / "packages").glob("*/src/**/*.py"))

PICKLE_MODULES = {
    "pickle",
    "cPickle",
    "_pickle",
    "dill",
    "shelve",
    "marshal",
    "joblib",
    "cloudpickle",
}
BANNED_BUILTINS = {"eval", "exec", "compile", "literal_eval", "__import__"}


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def findings(source: str, filename: str = "<snippet>") -> list[str]:
    """Every violation in ``source`` as ``file:line: what``."""
    tree = ast.parse(source, filename=filename)
    out: list[str] = []

    def report(node: ast.AST, what: str) -> None:
        out.append(f"{filename}:{getattr(node, 'lineno', 0)}: {what}")

    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] in PICKLE_MODULES:
                    report(node, f"imports {alias.name}")
        elif isinstance(node, ast.ImportFrom) and node.module:
            if node.module.split(".")[0] in PICKLE_MODULES:
                report(node, f"imports from {node.module}")
            if node.module == "ast" and any(a.name == "literal_eval" for a in node.names):
                report(node, "imports ast.literal_eval")
        elif isinstance(node, ast.Call):
            name = _dotted(node.func)
            last = name.rsplit(".", 1)[-1]
            if name in BANNED_BUILTINS or name in {
                "ast.literal_eval",
                "builtins.eval",
                "builtins.exec",
            }:
                report(node, f"calls {name}")
            elif last == "load" and name.split(".")[0] == "torch":
                if not _is_true(_keyword(node, "weights_only")):
                    report(node, "torch.load without weights_only=True")
            elif name in {"torch.save", "torch.serialization.save"}:
                report(node, "torch.save (pickle); write safetensors/JSON")
            elif last == "load" and name.split(".")[0] in {"np", "numpy"}:
                if _keyword(node, "allow_pickle") is not None and not (
                    isinstance(_keyword(node, "allow_pickle"), ast.Constant)
                    and _keyword(node, "allow_pickle").value is False  # type: ignore[union-attr]
                ):
                    report(node, "numpy.load with allow_pickle")
            elif name in {"yaml.load", "yaml.unsafe_load", "yaml.full_load"}:
                loader = _dotted(_keyword(node, "Loader") or ast.Name(id=""))
                if name != "yaml.load" or "Safe" not in loader:
                    report(node, f"{name} without SafeLoader")
            elif name in {"os.system", "os.popen"}:
                report(node, f"calls {name}")
            elif name.split(".")[0] == "subprocess" and _is_true(_keyword(node, "shell")):
                report(node, "subprocess with shell=True")
    return out


@pytest.mark.parametrize("path", SOURCES, ids=lambda p: str(p.relative_to(REPO / "packages")))
def test_package_source_has_no_unsafe_calls(path: Path) -> None:
    assert findings(path.read_text(encoding="utf-8"), str(path.relative_to(REPO))) == []


def test_there_are_sources_to_scan() -> None:
    assert len(SOURCES) >= 10, SOURCES


BAD_SNIPPETS = {
    "import pickle": "imports pickle",
    "import dill as d": "imports dill",
    "from pickle import loads": "imports from pickle",
    "from ast import literal_eval": "imports ast.literal_eval",
    "eval('1')": "calls eval",
    "exec('x=1')": "calls exec",
    "import ast\nast.literal_eval('1')": "calls ast.literal_eval",
    "import torch\ntorch.load('x.pt')": "torch.load without weights_only=True",
    "import torch\ntorch.load('x.pt', weights_only=False)": "torch.load without weights_only=True",
    "import torch\ntorch.save({}, 'x.pt')": "torch.save",
    "import numpy as np\nnp.load('x.npy', allow_pickle=True)": "numpy.load with allow_pickle",
    "import yaml\nyaml.load(s)": "yaml.load without SafeLoader",
    "import os\nos.system('ls')": "calls os.system",
    "import subprocess\nsubprocess.run('ls', shell=True)": "subprocess with shell=True",
}


@pytest.mark.parametrize("snippet", sorted(BAD_SNIPPETS))
def test_scanner_catches_each_rule(snippet: str) -> None:
    found = findings(snippet)
    assert len(found) == 1 and BAD_SNIPPETS[snippet] in found[0], found


def test_scanner_accepts_the_safe_forms() -> None:
    safe = (
        "import torch, numpy as np, yaml, json, subprocess, re\n"
        "torch.load('x.pt', map_location='cpu', weights_only=True)\n"
        "np.load('x.npy')\nnp.load('x.npy', allow_pickle=False)\n"
        "yaml.load(s, Loader=yaml.SafeLoader)\njson.loads('{}')\n"
        "subprocess.run(['ls'])\nre.compile('x')\nmodel.eval()\n"
    )
    assert findings(safe) == []
