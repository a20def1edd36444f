"""promotion.DiscountType on the wire: the same bytes and JSON numbers the int32 field took,
names where protobuf shows them, and the domain's numbers."""

from __future__ import annotations

import pytest
from google.protobuf import json_format

from promotion.proto import promotion_pb2
from promotion.server.models import DiscountType
from promotion.server.servicer import discount_type_to_proto

# Discount bytes as the int32 field wrote them: tag (3 << 3 | varint) and the value.
INT32_TYPE_1 = b"\x18\x01"
INT32_TYPE_MINUS_1 = b"\x18" + b"\xff" * 9 + b"\x01"


def test_domain_and_wire_numbers_agree() -> None:
    wire = promotion_pb2.DiscountType
    assert {v.number for v in wire.DESCRIPTOR.values} == {0, *(t.value for t in DiscountType)}
    for member in DiscountType:
        assert wire.Value(f"DISCOUNT_TYPE_{member.name}") == member
    assert wire.Name(0) == "DISCOUNT_TYPE_UNSPECIFIED"


def test_the_field_keeps_its_number_and_encoding() -> None:
    field = promotion_pb2.Discount.DESCRIPTOR.fields_by_name["type"]
    assert field.number == 3 and field.enum_type.name == "DiscountType"
    assert promotion_pb2.Discount(
        type=promotion_pb2.DISCOUNT_TYPE_PERCENTAGE
    ).SerializeToString() == (INT32_TYPE_1)
    assert promotion_pb2.Discount.FromString(INT32_TYPE_1).type == DiscountType.PERCENTAGE
    assert promotion_pb2.Discount.FromString(INT32_TYPE_MINUS_1).type == -1


@pytest.mark.parametrize("number", [-1, 0, 3, 99])
def test_numbers_outside_the_enum_still_arrive_for_validation_to_refuse(number: int) -> None:
    # proto3 enums are open: an unknown number is kept, not dropped, and the rules refuse it.
    sent = promotion_pb2.Discount(type=discount_type_to_proto(number))
    assert promotion_pb2.Discount.FromString(sent.SerializeToString()).type == number
    assert json_format.Parse(f'{{"type": {number}}}', promotion_pb2.Discount()).type == number


def test_json_accepts_numbers_and_names_and_shows_names() -> None:
    by_number = json_format.Parse('{"value": 5, "type": 2}', promotion_pb2.Discount())
    by_name = json_format.Parse(
        '{"value": 5, "type": "DISCOUNT_TYPE_AMOUNT"}', promotion_pb2.Discount()
    )
    assert by_number == by_name and by_number.type == DiscountType.AMOUNT
    assert json_format.MessageToDict(by_number)["type"] == "DISCOUNT_TYPE_AMOUNT"
