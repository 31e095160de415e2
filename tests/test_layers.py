"""The packages' dependency arrows point one way, and the sensor needs no server.

Layers, top to bottom: the command line and server composition (``sevenfold``);
the services (``attestation_server``, ``update_service``, ``passive_monitor``
with its receiving end, and the firmware and HIL tooling); the fleet server's
platform (``fleet_platform``); the shared device core (``device_runtime``).
A module may import its own layer's package or anything below, never above;
services do not import one another. Every import counts, including ones inside
functions, because a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

LAYERS: dict[str, int] = {
    "sevenfold": 3,
    "attestation_server": 2,
    "update_service": 2,
    "failure_reports": 2,
    "passive_monitor": 2,
    "firmware_images": 2,
    "hil_tests": 2,
    "fleet_platform": 1,
    "device_runtime": 0,
}
PACKAGES = tuple(LAYERS)
SENSOR_FORBIDDEN = ("passive_monitor.receiver",)
"""The sensor never reaches into the server's receiving end of its own package."""


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted name) of every absolute import; ``from a import b`` counts as ``a.b``."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.extend((node.lineno, f"{node.module}.{alias.name}") for alias in node.names)
    return found


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _sources() -> list[Path]:
    return sorted(p for package in PACKAGES for p in (REPO / package).rglob("*.py"))


def _violations() -> list[str]:
    problems = []
    for path in _sources():
        module = _module_name(path)
        own = module.split(".")[0]
        is_sensor = own == "passive_monitor" and not module.startswith("passive_monitor.receiver")
        for line, imported in _imports(path):
            target = imported.split(".")[0]
            where = f"{path.relative_to(REPO)}:{line} imports {imported}"
            if target not in LAYERS or target == own:
                if is_sensor and imported.startswith(SENSOR_FORBIDDEN):
                    problems.append(f"{where}: the sensor must not import its receiving end")
                continue
            if LAYERS[target] > LAYERS[own]:
                problems.append(f"{where}: {own} (layer {LAYERS[own]}) is below {target}")
            elif LAYERS[target] == LAYERS[own]:
                problems.append(f"{where}: services do not import one another")
    return problems


def test_every_package_is_assigned_a_layer() -> None:
    top_level = {
        p.name for p in REPO.iterdir() if (p / "__init__.py").is_file() and p.name != "tests"
    }
    assert top_level - {"bench"} == set(LAYERS)


def test_dependency_arrows_point_down() -> None:
    assert _violations() == []


@pytest.mark.parametrize(
    ("source", "imported", "expected"),
    [
        ("fleet_platform/x.py", "import attestation_server.registry", "is below"),
        ("device_runtime/x.py", "from fleet_platform import pki", "is below"),
        ("update_service/x.py", "from attestation_server import registry", "one another"),
        ("passive_monitor/x.py", "from passive_monitor.receiver import api", "receiving end"),
    ],
)
def test_the_checker_catches_each_kind_of_violation(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, source: str, imported: str, expected: str
) -> None:
    """A checker that never fails proves nothing: feed it one bad import of each kind."""
    fake = tmp_path / source
    fake.parent.mkdir(parents=True)
    fake.write_text(f"def later() -> None:\n    {imported}\n")
    monkeypatch.setattr(f"{__name__}.REPO", tmp_path)
    problems = _violations()
    assert len(problems) == 1
    assert expected in problems[0]
