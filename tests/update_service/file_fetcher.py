"""An ngclient fetcher that reads a repository directory the way the server's routes do."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from tuf.api.exceptions import DownloadHTTPError
from tuf.ngclient import FetcherInterface

from update_service.repository_files import RepositoryFiles

METADATA = "http://repository/metadata/"
TARGETS = "http://repository/targets/"


class DirectoryFetcher(FetcherInterface):
    def __init__(self, root: Path) -> None:
        self.files = RepositoryFiles(root=root)

    def _fetch(self, url: str) -> Iterator[bytes]:
        if url.startswith(METADATA):
            found = self.files.metadata(url.removeprefix(METADATA))
        else:
            found = self.files.target(url.removeprefix(TARGETS))
        if found is None:
            raise DownloadHTTPError(f"{url} not found", 404)
        yield found.read_bytes()
