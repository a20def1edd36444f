# Generated from suite.toml by `make generate`: edit suite.toml or the template
# templates/audit/payload_types.py.j2, not this file.
"""The record types the audit service can show as JSON (object_detail_json): importing each
producer's generated protobuf module registers its messages in the default descriptor pool,
where the history's conversion finds a payload type by name. Producers of suite.toml only."""

from __future__ import annotations

import importlib

# Imported by name: nothing here is used as an attribute, only registered by being imported.
PRODUCER_MODULES: tuple[str, ...] = (
    "user.proto.user_pb2",
    "promotion.proto.promotion_pb2",
    "customer.proto.customer_pb2",
    "product.proto.product_pb2",
)


def register() -> None:
    """Imports every producer's message types (once; later calls cost a dict lookup each)."""
    for module in PRODUCER_MODULES:
        importlib.import_module(module)
