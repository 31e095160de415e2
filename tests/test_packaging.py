"""A device install must not pull the server: checked on the metadata and on imports."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from tests.strict_mode import missing

REPO = Path(__file__).resolve().parents[1]

# The sensor install builds from this source tree: two workers building it at once
# would share setuptools' build directory.
pytestmark = pytest.mark.xdist_group("packaging")
SERVER_ONLY_NOT_CLI = ("sqlalchemy", "alembic", "fastapi", "uvicorn", "psycopg")
"""What only the fleet server needs; a sensor install must do without it."""
SERVER_ONLY = (*SERVER_ONLY_NOT_CLI, "typer", "rich", "httpx")
"""Nor may a device install pull the command line's libraries."""


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
    forbidden = {
        *SERVER_ONLY,
        "sevenfold",
        "attestation_server",
        "update_service",
        "failure_reports",
    }
    assert not loaded & forbidden


SENSOR_FORBIDDEN = {*SERVER_ONLY_NOT_CLI, "cryptography", "paho-mqtt", "starlette"}
"""Neither the server's libraries nor a device's belong in a sensor install."""


def _resolved(extra: str) -> set[str]:
    """Every requirement an extra pulls, following ``sevenfold[...]`` references."""
    extras = _extras()
    names: set[str] = set()
    for requirement in extras[extra]:
        if requirement.startswith("sevenfold["):
            for inner in requirement[len("sevenfold[") : -1].split(","):
                names |= _resolved(inner)
        else:
            names.add(requirement.split("==")[0].split("[")[0].lower())
    return names


def test_monitor_extra_has_no_server_dependency() -> None:
    assert not _resolved("monitor") & SENSOR_FORBIDDEN


@pytest.fixture(scope="module")
def sensor_install(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with ``pip install '.[monitor]'`` and nothing else."""
    work = tmp_path_factory.mktemp("sensor")
    venv = work / "venv"
    # Built from a copy of the sources: a build inside the checkout writes ``build/`` and
    # ``*.egg-info`` there, which another build (or a stale one) then collides with.
    source = work / "source"
    shutil.copytree(REPO, source, ignore=shutil.ignore_patterns(
        ".git", ".venv*", ".tuf-conformance", "build", "*.egg-info", "__pycache__"))  # fmt: skip
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    install = subprocess.run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", f"{source}[monitor]"],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if install.returncode != 0:
        missing("a package index for pip", f"pip install failed: {install.stderr[-400:]}")
    return venv


def test_sensor_install_holds_no_server_or_device_library(sensor_install: Path) -> None:
    listed = subprocess.run(
        [str(sensor_install / "bin" / "python"), "-m", "pip", "list", "--format=json"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    installed = {row["name"].lower() for row in json.loads(listed.stdout)}
    assert "sevenfold" in installed
    assert not installed & SENSOR_FORBIDDEN


def test_installed_sensor_runs_and_forwards(sensor_install: Path, tmp_path: Path) -> None:
    """The sensor install's own ``sevenfold monitor`` feeds a real fleet server."""
    from fleet_platform import api_tokens
    from fleet_platform.server_config import ServerConfig
    from passive_monitor.receiver.store import AssetRegistry
    from sevenfold.server import FleetServer
    from tests.components import shared_dir

    capture = shared_dir("pcaps") / "modbus" / "modbus_example.pcap"
    config = ServerConfig(state_dir=tmp_path / "state", http_port=0, services=("monitor",))
    with FleetServer(config=config) as fleet:
        token_file = tmp_path / "sensor.token"
        token_file.write_text(api_tokens.read(config.state_dir, name=api_tokens.SENSOR) or "")
        token_file.chmod(0o600)
        run = subprocess.run(
            [
                str(sensor_install / "bin" / "sevenfold"), "monitor", "--pcap", str(capture),
                "--forward", fleet.http_url, "--sensor-token-file", str(token_file),
                "--site", "plant-a", "--json",
            ],
            capture_output=True, text=True, cwd=tmp_path, timeout=120,
        )  # fmt: skip
        assert run.returncode == 0, run.stderr
        summary = json.loads(run.stdout)
        assert summary["forwarded"]["assets"] > 0
        assert fleet.database is not None
        stored = AssetRegistry(database=fleet.database).list_assets("plant-a")
        assert {record.ip for record in stored} == {a["ip"] for a in summary["assets"]}


def test_installed_sensor_names_the_extra_a_server_command_needs(sensor_install: Path) -> None:
    run = subprocess.run(
        [str(sensor_install / "bin" / "sevenfold"), "server"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert run.returncode == 2
    assert "pip install 'sevenfold[server]'" in run.stderr
    assert "Traceback" not in run.stderr
