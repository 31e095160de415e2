"""The CPython block device refuses every range outside it, whatever the numbers (the checks
of the port's rules, ``core/block_device.py``, that every implementation shares)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from device_runtime.core.errors import StorageError
from device_runtime.ports.cpython.block_device import FileBlockDevice

SIZE = 4 * 4096


@pytest.fixture(scope="module")
def flash(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FileBlockDevice]:
    device = FileBlockDevice(path=tmp_path_factory.mktemp("flash") / "flash", size=SIZE)
    yield device
    device.close()


NUMBERS = st.one_of(st.integers(-(2**40), 2**40), st.integers(-10, SIZE + 10))


@given(offset=NUMBERS, n=NUMBERS)
def test_a_read_is_served_inside_the_device_and_refused_outside(
    flash: FileBlockDevice, offset: int, n: int
) -> None:
    inside = offset >= 0 and n >= 0 and offset + n <= SIZE
    try:
        data = flash.read_at(offset, n)
    except StorageError as exc:
        assert not inside and "outside the 16384-byte device" in exc.reason
        return
    assert inside and len(data) == n


@given(offset=NUMBERS, n=NUMBERS)
def test_an_erase_is_whole_sectors_inside_the_device(
    flash: FileBlockDevice, offset: int, n: int
) -> None:
    allowed = offset >= 0 and n >= 0 and offset + n <= SIZE and not offset % 4096 and not n % 4096
    try:
        flash.erase(offset, n)
    except StorageError:
        assert not allowed
        return
    assert allowed


@pytest.mark.parametrize("offset", [1.5, "0", None])
def test_offsets_that_are_not_integers_are_refused(flash: FileBlockDevice, offset: object) -> None:
    with pytest.raises(StorageError, match="outside"):
        flash.write_at(offset, b"x")  # type: ignore[arg-type]


def test_an_unopenable_path_is_a_storage_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="cannot open"):
        FileBlockDevice(path=tmp_path / "missing" / "flash", size=SIZE)
