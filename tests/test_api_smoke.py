"""A first write and read through the SDK against a running stack."""

from __future__ import annotations

import uuid

from tests.conftest import LiveStack


def test_a_namespace_created_through_the_sdk_can_be_read_back_at_once(
    live_stack: LiveStack,
) -> None:
    client = live_stack.client()
    name = f"smoke-{uuid.uuid4().hex[:8]}"
    created = client.namespaces.create({"namespace_name": name})
    assert created.namespace_id.startswith("ns_")
    assert client.namespaces.get(name) == created
