"""An update's download: resumable across reboots, retried with back-off, capped in bandwidth.

:class:`Downloader` streams a target into the inactive slot through
``slot_install.install``, which checks it on the way. What it adds:

* **Resume across reboots.** ``install`` reports every sector-aligned offset
  the slot holds durably; each is saved in the download record
  (``download_record``: target name, length, SHA-256, offset, CRC). On the
  next try the record, if it is intact and names the same target, makes the
  download start at that offset with ``Range: bytes=N-``; a record for
  another target, a torn one, or one the slot cannot back (a marked image in
  it) is dropped and the download starts from 0. The record is cleared once
  the image is installed, and when the install refuses the bytes (a wrong
  hash, a bad signature): the next try never resumes from them.
* **Answers that do not fit the request.** A 206 must start at the offset
  asked and its total must be the target's length; a 200 to a ranged request
  (the server ignored ``Range``) is read and the first N bytes skipped; a 206
  elsewhere or a 416 restarts the download from 0, once; a 200 or 206 whose
  length is not the target's (or a body that runs past it) is refused, as is
  any 4xx but 416 (permanent: asking again will not help), with the reason.
* **Retries.** A connection refused or dropped, a timeout, a 5xx, a body cut
  short: the source reconnects at the byte it reached, after a wait from
  ``retry_schedule`` (exponential, full jitter, on the clock port); after the
  schedule's attempts in a row without a byte of progress it gives up with
  the last reason, and the record lets the next try go on from there.
* **Bandwidth.** Every byte received, skipped ones too, passes the
  ``bandwidth_cap`` when one is set.

The network is ``get(url, offset, max_length)``, by default the core's
``http_client.http_get``; *max_length* is always the target's whole length,
so that a server which ignores ``Range`` is not refused as too large.
Portable: CPython and MicroPython.
"""

from device_runtime.core import download_record
from device_runtime.core.download_record import DownloadRecord
from device_runtime.core.errors import SevenfoldError, TooLarge
from device_runtime.core.http_client import HttpError, http_get
from device_runtime.core.signed_image import ImageError
from device_runtime.core.slot_install import install
from device_runtime.core.slots import EMPTY

TYPE_CHECKING = False
if TYPE_CHECKING:
    from device_runtime.core.bandwidth_cap import BandwidthCap
    from device_runtime.core.image_trust import ImageTrust
    from device_runtime.core.port_types import HttpAnswer, HttpGet, OnProgress, Store
    from device_runtime.core.retry_schedule import RetrySchedule
    from device_runtime.core.signed_image import VerifiedImage
    from device_runtime.core.slots import Slot

PIECE = 1024
"""Bytes skipped at once from a 200 that ignored the range."""


class DownloadError(SevenfoldError):
    """A download failed; ``permanent`` when asking again cannot help (a 4xx, a file that is
    not the target's length), else the retries are spent and a later try may resume."""

    code = "download"

    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


class RangeRefused(DownloadError):
    """The server will not resume at the offset asked (a 416, or a 206 elsewhere)."""


class Target:
    """What the signed metadata says of one file: its name, where it is served, its length
    and SHA-256, the models it is for, and for a delta the digest of the image it applies to."""

    def __init__(
        self,
        name: str,
        url: str,
        length: int,
        sha256: bytes,
        hardware: "list[str] | tuple[str, ...]" = (),
        base: bytes = b"",
    ) -> None:
        self.name = name
        self.url = url
        self.length = length
        self.sha256 = sha256
        self.hardware = hardware
        self.base = base


class RangedSource:
    """``read(n)`` over the target from *offset* on, reconnecting where it left off."""

    def __init__(self, downloader: "Downloader", target: Target, offset: int) -> None:
        self.downloader = downloader
        self.target = target
        self.offset = offset
        self.response: "HttpAnswer | None" = None

    def __call__(self, n: int) -> bytes:
        n = min(n, self.target.length - self.offset)
        if n <= 0:
            return b""
        failures = 0
        while True:
            try:
                if self.response is None:
                    self.response = self._open()
                data = self.response.read(n)
                if not data:
                    raise HttpError("the body ended at byte %d of %d (truncated)"
                                    % (self.offset, self.target.length))  # fmt: skip
                break
            except TooLarge as exc:  # a body longer than the target: another file
                self.close()
                raise DownloadError(self.target.name + ": " + exc.reason, True) from None
            except (HttpError, OSError) as exc:
                self.close()
                failures += 1
                reason = exc.reason if isinstance(exc, HttpError) else "error: " + str(exc)
                if not self.downloader.schedule.wait(failures):
                    raise DownloadError(
                        "%s: gave up after %d attempts: %s" % (self.target.name, failures, reason)
                    ) from None
        self._received(len(data))
        self.offset += len(data)
        return data

    def _received(self, n: int) -> None:
        self.downloader.received += n
        cap = self.downloader.cap
        if cap is not None:
            cap.take(n)

    def _open(self) -> "HttpAnswer":
        target = self.target
        response = self.downloader.get(target.url, self.offset, target.length)
        try:
            self._check(response)
        except BaseException:
            response.close()
            raise
        return response

    def _check(self, response: "HttpAnswer") -> None:
        status = response.status
        name = self.target.name
        length = self.target.length
        if 500 <= status <= 599:
            raise HttpError("the server answered %d" % status)
        if status == 416 or (status == 206 and response.content_range is not None
                             and response.content_range[0] != self.offset):  # fmt: skip
            problem = "%s: the server refused to resume at byte %d (%d)" % (name, self.offset,
                                                                            status)  # fmt: skip
            raise RangeRefused(problem, permanent=not self.offset)
        if status == 206 and response.content_range is not None:
            total = response.content_range[2]
        elif status == 200:
            total = length if response.length is None else response.length
        else:
            raise DownloadError("%s: the server answered %d" % (name, status), permanent=True)
        if total != length:
            raise DownloadError("%s: the server's file is %d bytes, the target %d"
                                % (name, total, length), permanent=True)  # fmt: skip
        skip = self.offset if status == 200 else 0
        while skip:
            data = response.read(min(PIECE, skip))
            if not data:
                raise HttpError("the body ended while skipping to byte %d" % self.offset)
            self._received(len(data))
            skip -= len(data)

    def close(self) -> None:
        if self.response is not None:
            self.response.close()
            self.response = None


class Downloader:
    """A device's downloads: its durable *store* for the record, its retry *schedule*, an
    optional bandwidth *cap*, and the network (*get*; by default HTTP, each connect and
    receive given *timeout_s*)."""

    def __init__(
        self,
        store: "Store",
        schedule: "RetrySchedule",
        cap: "BandwidthCap | None" = None,
        get: "HttpGet | None" = None,
        timeout_s: float = 30,
    ) -> None:
        self.store = store
        self.schedule = schedule
        self.cap = cap
        self.get: "HttpGet" = get or self._http_get
        self.timeout_s = timeout_s
        self.received = 0
        """Bytes received from the network so far, skipped ones included."""
        self.notes: "list[str]" = []
        """What happened that the caller may report: a record dropped, a restart."""
        self.on_durable: "OnProgress | None" = None
        """Told each offset a full download has made durable, after its record is saved (the
        update agent reports progress from it)."""

    def _http_get(self, url: str, offset: int, max_length: int) -> "HttpAnswer":
        return http_get(url, offset=offset, max_length=max_length, timeout_s=self.timeout_s)

    def resumable(self, slot: "Slot", target: Target) -> int:
        """The offset a download of *target* into *slot* may resume at (0: from the start);
        a record that cannot be resumed from is dropped, with the reason noted."""
        record = download_record.load(self.store)
        if record == "":
            return 0
        if isinstance(record, str):
            problem = record
        elif not record.same_target(target.name, target.length, target.sha256):
            problem = "the download record is for another target (%s)" % record.name
        elif record.offset % slot.area.erase_size or record.offset >= target.length:
            problem = "the download record's offset %d is not a sector inside the target" % (
                record.offset
            )
        elif record.offset and slot.trailer().state != EMPTY:
            problem = "slot %s holds a marked image, not the recorded download" % slot.name
        else:
            return record.offset
        self.notes.append(problem + ": starting from 0")
        download_record.clear(self.store)
        return 0

    def install(
        self,
        slots: "list[Slot]",
        running: int,
        trust: "ImageTrust",
        target: Target,
        model: str,
    ) -> "VerifiedImage":
        """Download *target* into the inactive slot and check it (``slot_install.install``),
        resuming from the record; see the module for what is retried and what is not."""
        slot = slots[1 - running]
        resume_from = self.resumable(slot, target)
        restarted = False
        while True:
            source = RangedSource(self, target, resume_from)

            def progress(offset: int) -> None:
                record = DownloadRecord(target.name, target.length, target.sha256, offset)
                download_record.save(self.store, record)
                if self.on_durable is not None:
                    self.on_durable(offset)

            try:
                image = install(slots, running, source, trust, length=target.length,
                                sha256=target.sha256, hardware=target.hardware, model=model,
                                resume_from=resume_from, progress=progress)  # fmt: skip
            except RangeRefused as exc:
                if exc.permanent or restarted:
                    raise
                self.notes.append(exc.reason + ": starting from 0")
                download_record.clear(self.store)
                resume_from = 0
                restarted = True
                continue
            except ImageError:
                download_record.clear(self.store)
                raise
            finally:
                source.close()
            download_record.clear(self.store)
            return image
