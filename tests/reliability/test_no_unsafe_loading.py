"""Static guard: nothing in brainalign unpickles by default or uses an unsafe YAML loader."""
from __future__ import annotations

import ast
from pathlib import Path

import brainalign

SRC = Path(brainalign.__file__).parent


def _calls(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else getattr(f, "id", "")
            owner = f.value.id if isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) else ""
            yield owner, name, node


def test_no_pickle_and_safe_yaml_everywhere():
    problems = []
    files = sorted(SRC.rglob("*.py"))
    assert len(files) > 20
    for path in files:
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", "") or ""]
                if any(n.split(".")[0] in ("pickle", "cloudpickle", "dill", "joblib") for n in names):
                    problems.append(f"{path.name}:{node.lineno} imports a pickle module")
        for owner, name, call in _calls(tree):
            kw = {k.arg: k.value for k in call.keywords}
            where = f"{path.relative_to(SRC)}:{call.lineno}"
            if owner == "yaml" and name in ("load", "unsafe_load", "full_load", "load_all"):
                problems.append(f"{where} yaml.{name} (use yaml.safe_load)")
            if owner == "torch" and name == "load" and not (
                isinstance(kw.get("weights_only"), ast.Constant) and kw["weights_only"].value is True
            ):
                problems.append(f"{where} torch.load without weights_only=True")
            if owner == "np" and name == "load":
                flag = kw.get("allow_pickle")
                if flag is None:
                    continue  # numpy's default is allow_pickle=False
                if isinstance(flag, ast.Constant) and flag.value is True:
                    # only allowed behind an explicit opt-in argument of the same name
                    fn = next((f for f in ast.walk(tree) if isinstance(f, ast.FunctionDef)
                               and f.lineno <= call.lineno <= f.end_lineno
                               and "allow_pickle" in [a.arg for a in f.args.args + f.args.kwonlyargs]), None)
                    if fn is None:
                        problems.append(f"{where} np.load(allow_pickle=True) without an opt-in argument")
    assert problems == []
