"""The label values go-grpc-prometheus users query by: Go's status code names and its four
method types."""

from __future__ import annotations

import grpc

from global_utils.observability.metrics import GO_CODE_NAMES, grpc_type, split_method

# google.golang.org/grpc/codes: Code.String() for every code
GO_NAMES = [
    "OK", "Canceled", "Unknown", "InvalidArgument", "DeadlineExceeded", "NotFound",
    "AlreadyExists", "PermissionDenied", "ResourceExhausted", "FailedPrecondition", "Aborted",
    "OutOfRange", "Unimplemented", "Internal", "Unavailable", "DataLoss", "Unauthenticated",
]  # fmt: skip


def test_every_status_code_has_gos_name() -> None:
    by_number = {code.value[0]: GO_CODE_NAMES[code] for code in grpc.StatusCode}
    assert [by_number[number] for number in range(17)] == GO_NAMES


def test_method_types_and_names() -> None:
    assert grpc_type(False, False) == "unary"
    assert grpc_type(True, False) == "client_stream"
    assert grpc_type(False, True) == "server_stream"
    assert grpc_type(True, True) == "bidi_stream"
    assert split_method("/user.UserSrv/GetUserById") == ("user.UserSrv", "GetUserById")
    assert split_method(b"/grpc.health.v1.Health/Watch") == ("grpc.health.v1.Health", "Watch")
