"""The package's layering: no import cycle, no import from a lower layer to a higher one, and
nothing generic (``envs``, ``agents``) installed at the top level of site-packages.

Every import counts, lazy ones inside functions included. The layers, lowest first:
config/process < family < registry < policies < rollout < learn < run < api < tools < cli <
the ``metarl`` facade (which exports the family contract and, on first use, the front door of
:mod:`metarl.api`). The plugins (``metarl.envs``, ``metarl.agents``) sit beside the core: envs
may import only up to the registry, agents only up to learn, both the facade, and the core
never imports them.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = {"metarl": ROOT / "metarl", "metarl.envs": ROOT / "envs",
           "metarl.agents": ROOT / "agents"}
LAYERS = ["config", "process", "family", "registry", "policies", "rollout", "learn", "run",
          "api", "tools", "cli", "__init__", "__main__"]
PLUGIN_CEILING = {"envs": "registry", "agents": "learn"}


def modules() -> dict[str, Path]:
    """Every module of the installed package, by dotted name."""
    found = {}
    for package, folder in FOLDERS.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join([package, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, wherever in the file the import stands."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, *([base] if base else [])])
            for alias in node.names:
                full = f"{base}.{alias.name}"
                targets.add(full if full in known else base)
    return {target for target in targets if target in known}


def group(name: str) -> str:
    parts = name.split(".")
    return "__init__" if len(parts) == 1 else parts[1]


def graph() -> dict[str, set[str]]:
    found = modules()
    return {name: imports(name, path, set(found)) for name, path in found.items()}


def allowed(source: str, target: str) -> bool:
    a, b = group(source), group(target)
    if a == b:
        return True
    if b in PLUGIN_CEILING:  # only a plugin's own modules import it
        return False
    if a in PLUGIN_CEILING and b == "__init__":  # the facade's family contract
        return True
    ceiling = PLUGIN_CEILING.get(a, a)
    return LAYERS.index(b) <= LAYERS.index(ceiling)


def test_every_module_is_in_a_layer():
    unknown = {group(name) for name in graph()} - set(LAYERS) - set(PLUGIN_CEILING)
    assert not unknown, f"modules outside every layer: {sorted(unknown)}"


def test_imports_point_down():
    bad = [f"{source} imports {target}" for source, targets in graph().items()
           for target in targets if not allowed(source, target)]
    assert not bad, "\n".join(bad)


def test_no_import_cycle():
    edges = graph()
    state: dict[str, int] = {}  # 1 on the current path, 2 done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                return [*path, node, target]
            if target not in state and (cycle := visit(target, [*path, node])):
                return cycle
        state[node] = 2
        return None

    for node in sorted(edges):
        if node not in state:
            cycle = visit(node, [])
            assert cycle is None, " -> ".join(cycle[cycle.index(cycle[-1]):])


def test_the_checker_sees_a_violation(tmp_path):
    """The walk itself works: an upward import and a cycle are found."""
    assert not allowed("metarl.family.base", "metarl.run.training")
    assert not allowed("metarl.learn.learner", "metarl.agents.maml")
    assert not allowed("metarl.envs.maze", "metarl.policies.mlp")
    assert not allowed("metarl.run.training", "metarl.api")
    assert allowed("metarl.envs.maze", "metarl")
    assert allowed("metarl.agents.mbml", "metarl.agents.maml")
    module = tmp_path / "m.py"
    module.write_text("def f():\n    from metarl.run import training\n")
    assert imports("metarl.family.m", module, {"metarl.run.training", "metarl.run"}) == {
        "metarl.run.training"}


def test_nothing_generic_lands_in_site_packages(tmp_path):
    """Outside the checkout, ``import envs`` and ``import agents`` fail; the namespaced
    packages import and register the built-ins."""
    script = (
        "import importlib.util, metarl.envs, metarl.agents, metarl\n"
        "assert importlib.util.find_spec('envs') is None, 'envs'\n"
        "assert importlib.util.find_spec('agents') is None, 'agents'\n"
        "assert 'navigation2d' in metarl.family_names() and 'maml' in metarl.learner_names()\n"
        "assert callable(metarl.make) and metarl.MetaLearner.__module__ == 'metarl.api'\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
