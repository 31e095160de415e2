"""A device install must not pull the server: checked on the metadata and on imports."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SERVER_ONLY = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "psycopg", "typer", "rich", "httpx")


def _extras() -> dict[str, list[str]]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    assert project["dependencies"] == []
    return dict(project["optional-dependencies"])


def test_device_extra_has_no_server_dependency() -> None:
    device = " ".join(_extras()["device"]).lower()
    assert not [name for name in SERVER_ONLY if name in device]


def test_every_dependency_is_pinned() -> None:
    for extra, requirements in _extras().items():
        for requirement in requirements:
            assert requirement.startswith("sevenfold[") or "==" in requirement, (extra, requirement)


def test_device_runtime_imports_no_server_module() -> None:
    probe = (
        "import importlib, pkgutil, sys\n"
        "import device_runtime\n"
        "for m in pkgutil.walk_packages(device_runtime.__path__, 'device_runtime.'):\n"
        "    if '.ports.micropython' not in m.name:\n"
        "        importlib.import_module(m.name)\n"
        "roots = {name.split('.')[0] for name in sys.modules}\n"
        "print(' '.join(sorted(roots)))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=REPO, check=True
    )
    loaded = set(result.stdout.split())
    forbidden = {*SERVER_ONLY, "sevenfold", "attestation_server", "update_service"}
    assert not loaded & forbidden
