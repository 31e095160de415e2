"""``sevenfold factory``: the manufacturer CA, and provisioning boards (docs/factory.md)."""

from __future__ import annotations

import socket
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from sevenfold.cli.extras import missing_extra
from sevenfold.cli.output import emit_json, reported_errors, say, show, stderr_console
from sevenfold.cli.tables import board_table

if TYPE_CHECKING:
    from cryptography import x509

    from sevenfold.factory_station import BoardResult, Station

app = typer.Typer(help="Factory line: the manufacturer CA and provisioning over serial consoles.")


@app.command("init-ca")
def init_ca(
    directory: Annotated[Path, typer.Option("--dir", help="Where ca.pem and ca.key (0600) go.")],
) -> None:
    """Create the manufacturer CA that signs DeviceID certificates; refuses to overwrite one."""
    with reported_errors():
        from sevenfold.factory_station import init_ca as create

        authority = create(directory)
    say("manufacturer CA ", (str(authority.cert_path), "bold"))


@app.command("provision")
def provision(
    ports: Annotated[
        list[str],
        typer.Option(
            "--port", help="A pyserial URL: /dev/ttyUSB0, socket://h:p, rfc2217://, a pty."
        ),
    ],
    server: Annotated[str, typer.Option("--server", help="Fleet server URL.")],
    token_file: Annotated[Path, typer.Option("--token-file", help="The factory API token.")],
    ca: Annotated[Path, typer.Option("--ca", help="The manufacturer CA (factory init-ca).")],
    count: Annotated[
        int | None, typer.Option("--count", min=1, help="Boards on the panel; {n} in --port counts")
    ] = None,
    reprovision: Annotated[bool, typer.Option("--reprovision")] = False,
    allow_software: Annotated[
        bool,
        typer.Option(
            "--allow-software",
            help="Accept boards with a software root of trust (development lines only).",
        ),
    ] = False,
    hwmodels: Annotated[
        list[str] | None, typer.Option("--hwmodel", help="A model this line builds (repeatable).")
    ] = None,
    tpm_ca: Annotated[
        list[Path] | None, typer.Option("--tpm-ca", help="PEM of a trusted TPM (EK) CA.")
    ] = None,
    station_name: Annotated[str | None, typer.Option("--station")] = None,
    timeout: Annotated[float, typer.Option("--timeout", min=0.1)] = 10.0,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Provision every board on the given ports; exit 1 if any board failed."""
    with reported_errors():
        try:
            import serial  # noqa: F401

            from fleet_platform.pki import CertificateAuthority
            from sevenfold import factory_station
        except ModuleNotFoundError as exc:
            raise missing_extra(command="factory provision", extra="factory", error=exc) from exc
        station = factory_station.Station(
            authority=CertificateAuthority.load(ca),
            server=server,
            token=_read_token(token_file),
            name=station_name or socket.gethostname()[:64] or "station",
            hwmodels=tuple(hwmodels or ()),
            tpm_cas=tuple(_load_cas(tpm_ca or [])),
            reprovision=reprovision,
            allow_software=allow_software,
            timeout=timeout,
        )
        urls = _expand(ports, count)
    results = _run(station, urls, quiet=as_json)
    if as_json:
        emit_json(
            {
                "boards": [result.as_json() for result in results],
                "provisioned": sum(result.error is None for result in results),
                "failed": sum(result.error is not None for result in results),
            }
        )
    else:
        show(board_table(results))
    if any(result.error is not None for result in results):
        raise typer.Exit(1)


def _run(station: Station, urls: list[str], *, quiet: bool) -> list[BoardResult]:
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from sevenfold.cli.output import LiteralDescriptionColumn
    from sevenfold.factory_station import provision as provision_board

    with Progress(
        SpinnerColumn(),
        LiteralDescriptionColumn(),
        TextColumn("{task.fields[step]}"),
        console=stderr_console(),
        disable=quiet,
        transient=False,
    ) as progress:
        tasks = {url: progress.add_task(url, step="waiting", total=None) for url in urls}

        def report(result: BoardResult) -> None:
            shown = result.step if result.error is None else f"failed: {result.code}"
            progress.update(tasks[result.port], step=shown)

        with ThreadPoolExecutor(max_workers=min(16, len(urls))) as pool:
            return list(pool.map(lambda url: provision_board(station, url, report), urls))


def _expand(ports: list[str], count: int | None) -> list[str]:
    from sevenfold.factory_station import StationError

    if count is not None and len(ports) == 1 and "{n}" in ports[0]:
        return [ports[0].replace("{n}", str(n)) for n in range(1, count + 1)]
    if count is not None and count != len(ports):
        raise StationError("count", f"--count {count} but {len(ports)} ports were given")
    if len(set(ports)) != len(ports):
        raise StationError("duplicate-port", "a port is given twice")
    return ports


def _read_token(path: Path) -> str:
    from sevenfold.factory_station import StationError

    try:
        token = path.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise StationError("token", f"cannot read the factory token {path}: {exc}") from None
    if not token:
        raise StationError("token", f"the factory token file {path} is empty")
    return token


def _load_cas(paths: list[Path]) -> list[x509.Certificate]:
    from cryptography import x509

    from sevenfold.factory_station import StationError

    loaded: list[x509.Certificate] = []
    for path in paths:
        try:
            loaded.extend(x509.load_pem_x509_certificates(path.read_bytes()))
        except (OSError, ValueError) as exc:
            raise StationError("tpm-ca", f"cannot read the TPM CA {path}: {exc}") from None
    return loaded
