"""Domain errors map to gRPC codes; messages exist in English, Spanish and French."""

from __future__ import annotations

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2

from global_errors import (
    AlreadyExists,
    FailedPrecondition,
    Failure,
    Language,
    MessageKey,
    NotFound,
    Unauthenticated,
    Unavailable,
    ValidationFailed,
    render,
)
from global_errors.messages import catalog
from global_errors.status import status_code_for, to_grpc_status


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (
            ValidationFailed([Failure("x", MessageKey.FIELD_REQUIRED)]),
            grpc.StatusCode.INVALID_ARGUMENT,
        ),
        (NotFound(MessageKey.RECORD_NOT_FOUND, entity="user", id=1), grpc.StatusCode.NOT_FOUND),
        (
            AlreadyExists(MessageKey.RECORD_ALREADY_EXISTS, entity="user"),
            grpc.StatusCode.ALREADY_EXISTS,
        ),
        (
            FailedPrecondition(MessageKey.USER_ACTIVE_CANNOT_DELETE, id=1),
            grpc.StatusCode.FAILED_PRECONDITION,
        ),
        (Unauthenticated(MessageKey.TOKEN_MISSING), grpc.StatusCode.UNAUTHENTICATED),
        (Unavailable(MessageKey.DATABASE_UNAVAILABLE), grpc.StatusCode.UNAVAILABLE),
        (RuntimeError("boom"), grpc.StatusCode.INTERNAL),
        (KeyError("x"), grpc.StatusCode.INTERNAL),
    ],
)
def test_status_codes(error: Exception, code: grpc.StatusCode) -> None:
    assert status_code_for(error) == code


def test_unexpected_errors_do_not_leak_their_text() -> None:
    status = to_grpc_status(RuntimeError("password=hunter2 at db host"), Language.EN)
    assert status.code == grpc.StatusCode.INTERNAL and status.details == "internal error"


def test_validation_status_carries_bad_request_details() -> None:
    error = ValidationFailed(
        [
            Failure("email", MessageKey.FIELD_REQUIRED),
            Failure("pwd", MessageKey.FIELD_TOO_LONG_BYTES, {"max": 72}),
        ]
    )
    status = to_grpc_status(error, Language.ES)
    assert status.details == (
        "la validación falló (2): email es obligatorio; pwd debe tener como máximo 72 bytes"
    )
    ((key, value),) = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    rich = status_pb2.Status.FromString(value)
    bad_request = error_details_pb2.BadRequest()
    assert rich.details[0].Unpack(bad_request)
    assert [(v.field, v.description) for v in bad_request.field_violations] == [
        ("email", "email es obligatorio"),
        ("pwd", "pwd debe tener como máximo 72 bytes"),
    ]


def test_every_language_has_every_message_with_the_same_placeholders() -> None:
    import string

    def placeholders(text: str) -> set[str]:
        return {name for _, name, _, _ in string.Formatter().parse(text) if name}

    english = catalog(Language.EN)
    assert set(english) == set(MessageKey)
    for language in Language:
        messages = catalog(language)
        assert set(messages) == set(MessageKey), language
        for key in MessageKey:
            assert placeholders(messages[key]) == placeholders(english[key]), (language, key)


def test_messages_differ_by_language() -> None:
    texts = {render(MessageKey.TOKEN_MISSING, lang) for lang in Language}
    assert texts == {
        "authentication token missing",
        "falta el token de autenticación",
        "jeton d'authentification manquant",
    }
    assert (
        render(MessageKey.RECORD_NOT_FOUND, Language.FR, entity="user", id=7)
        == "user 7 introuvable"
    )
