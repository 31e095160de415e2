"""docs/tcb.md is the code's own measure of the trusted computing base, and within budget."""

from __future__ import annotations

import subprocess
import sys

from firmware_images import tcb


def test_the_document_is_what_the_code_measures() -> None:
    assert tcb.DOCUMENT.read_text(encoding="utf-8") == tcb.report(), (
        "docs/tcb.md is stale: run python -m firmware_images.tcb"
    )


def test_the_trusted_computing_base_of_every_board_is_within_budget() -> None:
    totals = tcb.board_totals()
    assert set(totals) == set(tcb.BOARDS)
    assert all(total <= tcb.BUDGET for total in totals.values()), totals


def test_every_part_names_known_boards_and_each_board_trusts_the_shared_core() -> None:
    assert all(set(part.boards) <= set(tcb.BOARDS) for part in tcb.PARTS)
    shared = ("device_runtime/core/console.py", "device_runtime/core/cbor.py")
    for board in tcb.BOARDS:
        trusted = {m for part in tcb.PARTS if board in part.boards for m in part.modules}
        assert set(shared) <= trusted


def test_every_listed_module_exists_and_none_is_listed_twice() -> None:
    modules = [module for part in tcb.PARTS for module in part.modules]
    assert len(modules) == len(set(modules))
    assert all((tcb.REPO / module).is_file() for module in modules)


def test_only_code_is_counted() -> None:
    source = (
        '"""Module docstring."""\n\n# a comment\nx = 1\n\n\n'
        'def f() -> None:\n    """Doc."""\n    return None\n'
    )
    assert tcb.code_lines(source) == 3


def test_check_mode_passes_on_the_committed_document() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "firmware_images.tcb", "--check"],
        capture_output=True, text=True, cwd=tcb.REPO,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
