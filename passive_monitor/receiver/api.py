"""The fleet server's receiving end for passive sensors, and the operators' view of it.

Sensors sit on plant networks and are the most exposed machines of an
installation, so everything they send is treated as hostile: bodies are capped
before they are parsed, every field of every asset and alert is typed and
bounded, unknown fields are dropped rather than stored, and a rejection names
what was wrong without echoing the input back. Sensors and operators hold
different tokens, so neither can use the other's routes.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Callable, Coroutine, Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, Literal, Protocol

from fastapi import APIRouter, Depends, HTTPException, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictInt, StringConstraints

from device_runtime.core.errors import StorageError
from fleet_platform.validation_errors import reasons
from passive_monitor.alerts.model import Engine, Severity
from passive_monitor.receiver.records import LegacyAssetRecord, MonitorAlertRecord
from passive_monitor.receiver.store import AssetRegistry
from passive_monitor.site import SITE_PATTERN

MAX_BODY_BYTES = 8 << 20
"""Largest request body read; a full 10,000-asset inventory fits with room to spare."""

MAX_ASSETS = 10_000
MAX_ALERTS = 10_000
MAX_COUNT = 2**63 - 1


def _canonical_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        raise ValueError("not an IP address") from None


IpText = Annotated[str, StringConstraints(max_length=64), AfterValidator(_canonical_ip)]
Word = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_./:-]{1,64}$")]
Text = Annotated[str, StringConstraints(max_length=256)]
LongText = Annotated[str, StringConstraints(max_length=4096)]
Mac = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f:.-]{1,32}$")]
Seconds = Annotated[float, Field(ge=0, allow_inf_nan=False)]
Site = Annotated[str, Path(pattern=SITE_PATTERN, description="Site name (device-id rules).")]


class AssetIn(BaseModel):
    """An asset as ``passive_monitor.inventory.Asset.to_dict`` writes it."""

    model_config = ConfigDict(extra="ignore")

    ip: IpText
    macs: list[Mac] = Field(default_factory=list, max_length=16)
    mac_vendor: Text | None = None
    roles: dict[Word, Annotated[list[Word], Field(max_length=8)]] = Field(
        default_factory=dict, max_length=32
    )
    services: list[Word] = Field(default_factory=list, max_length=64)
    vendor: Text | None = None
    product: Text | None = None
    model: Text | None = None
    firmware: Text | None = None
    serial: Text | None = None
    name: Text | None = None
    device_instance: Annotated[StrictInt, Field(ge=0, le=2**32)] | None = None
    plc_state: Word | None = None
    purdue_level: Annotated[StrictInt, Field(ge=0, le=5)] | None = None
    first_seen: Seconds = 0.0
    last_seen: Seconds = 0.0


class PartyIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    ip: IpText
    port: Annotated[StrictInt, Field(ge=0, le=65535)] | None = None
    mac: Mac | None = None


class EvidenceIn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    frame: Annotated[StrictInt, Field(ge=0, le=MAX_COUNT)]
    ts: Seconds


class AlertIn(BaseModel):
    """An alert as ``passive_monitor.alerts.model.Alert.to_dict`` writes it."""

    model_config = ConfigDict(extra="ignore")

    id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9._:-]{1,64}$")]
    rule: Word
    engine: Engine
    severity: Severity
    title: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    description: LongText = ""
    protocol: Word | None = None
    function: Text | None = None
    transport: Annotated[str, StringConstraints(max_length=16)] = ""
    client: PartyIn | None = None
    server: PartyIn | None = None
    technique: Word | None = None
    evidence: list[EvidenceIn] = Field(default_factory=list, max_length=64)
    count: Annotated[StrictInt, Field(ge=1, le=MAX_COUNT)]
    first_seen: Seconds
    last_seen: Seconds


class AssetsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    assets: list[AssetIn] = Field(max_length=MAX_ASSETS)


class AlertsBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    alerts: list[AlertIn] = Field(max_length=MAX_ALERTS)


class Accepted(BaseModel):
    site: str
    accepted: int


class LegacyAssetView(BaseModel):
    site: str
    ip: str
    managed: Literal[False] = False
    vendor: str | None
    product: str | None
    firmware: str | None
    serial: str | None
    protocols: list[str]
    first_seen: datetime
    last_seen: datetime
    asset: dict[str, Any]


class MonitorAlertView(BaseModel):
    site: str
    alert_id: str
    engine: str
    severity: str
    title: str
    technique: str | None
    count: int
    first_seen: datetime
    last_seen: datetime
    alert: dict[str, Any]


class InventoryItem(BaseModel):
    """One row of the combined inventory: an enrolled device or a legacy asset."""

    managed: bool
    name: str
    site: str | None
    ip: str | None
    vendor: str | None
    product: str | None
    firmware: str | None
    protocols: list[str]
    status: str | None
    last_seen: datetime


class _CappedRequest(Request):
    """A request whose body is refused past the cap before it is held in memory whole."""

    async def body(self) -> bytes:
        if not hasattr(self, "_body"):
            declared = self.headers.get("content-length")
            if declared is not None and (not declared.isdigit() or int(declared) > MAX_BODY_BYTES):
                raise _too_large()
            chunks: list[bytes] = []
            size = 0
            async for chunk in self.stream():
                size += len(chunk)
                if size > MAX_BODY_BYTES:
                    raise _too_large()
                chunks.append(chunk)
            self._body = b"".join(chunks)
        return self._body

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            try:
                self._json = json.loads(await self.body(), parse_constant=_reject_constant)
            except RecursionError:
                raise HTTPException(status_code=400, detail="JSON nested too deeply") from None
            except UnicodeDecodeError:
                raise HTTPException(status_code=400, detail="body is not UTF-8") from None
        return self._json


def _sensor_route(sensor: Callable[..., None]) -> type[APIRoute]:
    """Routes that check the sensor token before reading a body, then cap and validate it.

    FastAPI reads and parses a body before it runs any dependency, which would let
    a client without a token make the server parse megabytes of JSON; requests
    that carry a body are therefore refused here first. Validation failures are
    re-reported compactly instead of echoing the hostile input.
    """

    class SensorRoute(APIRoute):
        max_body_bytes = MAX_BODY_BYTES
        """Read by :mod:`fleet_platform.request_limits`, which refuses larger bodies first."""

        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()

            async def capped(request: Request) -> Response:
                if request.method in ("PUT", "POST"):
                    sensor(request.headers.get("authorization"))
                try:
                    return await handler(_CappedRequest(request.scope, request.receive))
                except RequestValidationError as exc:
                    raise HTTPException(status_code=422, detail=reasons(exc)) from None

            return capped

    return SensorRoute


def _too_large() -> HTTPException:
    return HTTPException(status_code=413, detail=f"body larger than {MAX_BODY_BYTES} bytes")


def _reject_constant(name: str) -> None:
    raise HTTPException(status_code=400, detail=f"{name} is not a JSON number")


def _unavailable(exc: StorageError) -> HTTPException:
    return HTTPException(status_code=503, detail=f"storage unavailable: {exc.reason}")


def _asset_view(record: LegacyAssetRecord) -> LegacyAssetView:
    return LegacyAssetView(
        site=record.site,
        ip=record.ip,
        vendor=record.vendor,
        product=record.product,
        firmware=record.firmware,
        serial=record.serial,
        protocols=list(record.protocols),
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        asset=record.document(),
    )


def _alert_view(record: MonitorAlertRecord) -> MonitorAlertView:
    return MonitorAlertView(
        site=record.site,
        alert_id=record.alert_id,
        engine=record.engine,
        severity=record.severity,
        title=record.title,
        technique=record.technique,
        count=record.count,
        first_seen=record.first_seen,
        last_seen=record.last_seen,
        alert=record.document(),
    )


class ManagedDevice(Protocol):
    """What the inventory shows of an enrolled device; the attestation server's record fits."""

    @property
    def device_id(self) -> str: ...
    @property
    def hwmodel(self) -> str: ...
    @property
    def swname(self) -> str: ...
    @property
    def swversion(self) -> str: ...
    @property
    def last_seen(self) -> datetime: ...
    def status(self, now: datetime) -> str: ...


def router(
    *,
    assets: AssetRegistry,
    devices: Callable[[], Iterable[ManagedDevice]],
    operator: Callable[..., None],
    sensor: Callable[..., None],
) -> APIRouter:
    """Routes bound to the registries; *operator* and *sensor* are the token dependencies.

    *devices* lists the managed devices for the inventory; the server composition
    passes the attestation server's registry, which this service does not import.
    """
    api = APIRouter(prefix="/api/v1", tags=["monitor"], route_class=_sensor_route(sensor))
    as_sensor = [Depends(sensor)]
    as_operator = [Depends(operator)]

    @api.put("/sites/{site}/assets", dependencies=as_sensor)
    def put_assets(site: Site, body: AssetsBody) -> Accepted:
        documents = [asset.model_dump(mode="json") for asset in body.assets]
        try:
            accepted = assets.upsert_assets(site, documents, now=datetime.now(UTC))
        except StorageError as exc:
            raise _unavailable(exc) from exc
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return Accepted(site=site, accepted=accepted)

    @api.post("/sites/{site}/alerts", dependencies=as_sensor)
    def post_alerts(site: Site, body: AlertsBody) -> Accepted:
        documents = [alert.model_dump(mode="json") for alert in body.alerts]
        try:
            accepted = assets.record_alerts(site, documents, now=datetime.now(UTC))
        except StorageError as exc:
            raise _unavailable(exc) from exc
        except ValueError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        return Accepted(site=site, accepted=accepted)

    @api.get("/assets", dependencies=as_operator)
    def list_assets(
        site: Annotated[str | None, Query(pattern=SITE_PATTERN)] = None,
    ) -> list[LegacyAssetView]:
        try:
            return [_asset_view(record) for record in assets.list_assets(site)]
        except StorageError as exc:
            raise _unavailable(exc) from exc

    @api.get("/alerts", dependencies=as_operator)
    def list_alerts(
        site: Annotated[str | None, Query(pattern=SITE_PATTERN)] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[MonitorAlertView]:
        try:
            return [_alert_view(record) for record in assets.list_alerts(site, limit=limit)]
        except StorageError as exc:
            raise _unavailable(exc) from exc

    @api.get("/inventory", dependencies=as_operator)
    def inventory() -> list[InventoryItem]:
        now = datetime.now(UTC)
        try:
            managed = list(devices())
            legacy = assets.list_assets()
        except StorageError as exc:
            raise _unavailable(exc) from exc
        items = [
            InventoryItem(
                managed=True,
                name=device.device_id,
                site=None,
                ip=None,
                vendor=None,
                product=device.hwmodel,
                firmware=f"{device.swname} {device.swversion}",
                protocols=["mqtt"],
                status=device.status(now),
                last_seen=device.last_seen,
            )
            for device in managed
        ]
        items.extend(
            InventoryItem(
                managed=False,
                name=record.document().get("name") or record.ip,
                site=record.site,
                ip=record.ip,
                vendor=record.vendor,
                product=record.product,
                firmware=record.firmware,
                protocols=list(record.protocols),
                status=None,
                last_seen=record.last_seen,
            )
            for record in legacy
        )
        return items

    return api
