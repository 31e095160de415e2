"""Every portable test module of the device core, run again under the real MicroPython.

A module opts in with a module-level ``PORTABLE = True``; it then runs here
through ``micropython_runner.py`` with a 64 KiB heap, like a small
microcontroller. The modules are loaded as mpy-cross bytecode, as firmware
ships them: compiling source needs several times the source size in heap,
which no device of that class spends, while the runtime heap the tests measure
is the one a device has.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from firmware_images.micropython_bundle import build
from tests.components import binary

REPO = Path(__file__).resolve().parents[2]
TESTS_ROOT = REPO / "tests" / "device_runtime"
RUNNER = "tests/device_runtime/micropython_runner.py"
HEAP = "heapsize=64K"


PORTABLE_LINE = re.compile(r"^PORTABLE = True[ \t]*(#.*)?$", re.MULTILINE)
HELPER_LINE = re.compile(r"^PORTABLE_HELPER = True[ \t]*(#.*)?$", re.MULTILINE)
TEST_FUNCTION = re.compile(r"^def test_\w+\(", re.MULTILINE)


def _declares_portable(path: Path) -> bool:
    return PORTABLE_LINE.search(path.read_text(encoding="utf-8")) is not None


def _portable_test_files() -> list[Path]:
    return [p for p in sorted(TESTS_ROOT.rglob("test_*.py")) if _declares_portable(p)]


def _portable_helpers() -> list[Path]:
    """Modules that portable tests import, marked with ``PORTABLE_HELPER = True``."""
    return [
        p
        for p in sorted(TESTS_ROOT.rglob("*.py"))
        if HELPER_LINE.search(p.read_text(encoding="utf-8")) is not None
    ]


def _module_name(path: Path) -> str:
    return ".".join(path.relative_to(REPO).with_suffix("").parts)


def _test_function_count(path: Path) -> int:
    return len(TEST_FUNCTION.findall(path.read_text(encoding="utf-8")))


@pytest.fixture(scope="module")
def bytecode_tree() -> Iterator[Path]:
    """The bytecode a board would hold, at a short path of fixed length.

    MicroPython keeps each module's file name as an interned string; pytest's
    temporary directories are long and grow with every run, which costs a
    64 KiB heap a varying kilobyte or two. A board's paths are short.
    """
    tree = Path(tempfile.mkdtemp(prefix="mpy", dir="/tmp"))
    try:
        build(root=REPO, out=tree, extra=_portable_test_files() + _portable_helpers())
        yield tree
    finally:
        shutil.rmtree(tree, ignore_errors=True)


def _run_runner(modules: list[str], micropath: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MICROPYPATH=f"{micropath}:.frozen")
    return subprocess.run(
        [binary("micropython"), "-X", HEAP, RUNNER, *modules],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


PORTABLE_FILES = _portable_test_files()


@pytest.mark.parametrize("path", PORTABLE_FILES, ids=[_module_name(p) for p in PORTABLE_FILES])
def test_portable_module_passes_under_micropython(path: Path, bytecode_tree: Path) -> None:
    module = _module_name(path)
    result = _run_runner([module], bytecode_tree)
    output = result.stdout + result.stderr
    assert result.returncode == 0, f"MicroPython run of {module} failed:\n{output}"
    expected = _test_function_count(path)
    assert f"{module}: {expected} passed, 0 failed" in result.stdout, output
    # MicroPython prints warnings (e.g. "Comparison between bytes and str") to
    # the console; hostile input must never make the core print any.
    assert "Warning" not in output, output


def test_the_codec_suite_is_among_the_portable_modules() -> None:
    assert "tests.device_runtime.core.test_cbor" in [_module_name(p) for p in PORTABLE_FILES]


SAMPLE_MODULE = textwrap.dedent(
    """
    PORTABLE = True

    def test_passes():
        assert 1 + 1 == 2

    def test_fails_an_assertion():
        assert 1 + 1 == 3, "arithmetic"

    def test_raises():
        raise ValueError("boom")
    """
)


def test_runner_reports_each_failure_and_exits_non_zero(tmp_path: Path) -> None:
    (tmp_path / "sample_portable_checks.py").write_text(SAMPLE_MODULE, encoding="utf-8")
    result = _run_runner(["sample_portable_checks"], tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert (
        "FAIL sample_portable_checks.test_fails_an_assertion: AssertionError: arithmetic" in lines
    )
    assert "FAIL sample_portable_checks.test_raises: ValueError: boom" in lines
    assert "summary: 1 passed, 2 failed in 1 modules" in lines


def test_runner_fails_on_a_module_that_does_not_import(tmp_path: Path) -> None:
    result = _run_runner(["no_such_portable_module"], tmp_path)
    assert result.returncode == 1
    assert "FAIL no_such_portable_module (import): ImportError" in result.stdout


def test_runner_fails_on_a_module_without_tests(tmp_path: Path) -> None:
    (tmp_path / "empty_portable_module.py").write_text("PORTABLE = True\n", encoding="utf-8")
    result = _run_runner(["empty_portable_module"], tmp_path)
    assert result.returncode == 1
    assert "FAIL empty_portable_module: no test_* functions found" in result.stdout
