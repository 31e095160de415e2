"""The server's parse of device topics: the device id and the plane of an up topic."""

import pytest

from device_runtime.core.errors import InvalidField
from fleet_platform.device_topics import device_from_topic, down_topic, route_of


def test_up_topics_name_their_device_and_plane() -> None:
    assert device_from_topic("sevenfold", "sevenfold/d/dev-1/up") == "dev-1"
    assert device_from_topic("a/b", "a/b/d/x9/up") == "x9"
    assert route_of("sevenfold", "sevenfold/d/dev-1/up") == ("dev-1", "app")
    assert route_of("sevenfold", "sevenfold/d/dev-1/att/up") == ("dev-1", "att")
    assert down_topic("att", "sevenfold", "dev-1") == "sevenfold/d/dev-1/att/down"
    assert down_topic("app", "sevenfold", "dev-1") == "sevenfold/d/dev-1/down"


@pytest.mark.parametrize(
    "topic",
    [
        "sevenfold/d/dev-1/down",
        "sevenfold/d/dev-1",
        "other/d/dev-1/up",
        "sevenfold/d/Dev/up",
        "sevenfold/d/+/up",
        "sevenfold/d//up",
        "sevenfold/d/a/b/up",
        "sevenfold/d/dev-1/att/down",
        "sevenfold/d/dev-1/upd/up",
        "sevenfold/d/dev-1/att/x/up",
        "sevenfold/d/sevenfold-server/up",
    ],
)
def test_anything_else_is_not_a_device_up_topic(topic: str) -> None:
    with pytest.raises(InvalidField):
        route_of("sevenfold", topic)
