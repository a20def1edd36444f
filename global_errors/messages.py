"""Localized message catalog (English, Spanish, French), selected by APP_LANGUAGE."""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Language(StrEnum):
    EN = "en"
    ES = "es"
    FR = "fr"


class MessageKey(StrEnum):
    VALIDATION_FAILED = "validation_failed"
    FIELD_REQUIRED = "field_required"
    FIELD_TOO_LONG = "field_too_long"
    FIELD_TOO_LONG_BYTES = "field_too_long_bytes"
    FIELD_BAD_CHARACTERS = "field_bad_characters"
    FIELD_OUT_OF_RANGE = "field_out_of_range"
    FIELD_NOT_POSITIVE = "field_not_positive"
    FIELD_NOT_NUMBER = "field_not_number"
    FIELD_NOT_ALLOWED = "field_not_allowed"
    FIELD_DUPLICATE = "field_duplicate"
    TOO_MANY_ITEMS = "too_many_items"
    EMAIL_INVALID = "email_invalid"
    EMAIL_TAKEN = "email_taken"
    VALID_THRU_NOT_AFTER_FROM = "valid_thru_not_after_from"
    PAGE_TOKEN_INVALID = "page_token_invalid"
    REQUEST_UNPARSABLE = "request_unparsable"
    RECORD_NOT_FOUND = "record_not_found"
    RECORD_ALREADY_EXISTS = "record_already_exists"
    USER_ACTIVE_CANNOT_DELETE = "user_active_cannot_delete"
    PROMOTION_APPROVED_CANNOT_DELETE = "promotion_approved_cannot_delete"
    BAD_CREDENTIALS = "bad_credentials"
    TOKEN_MISSING = "token_missing"
    TOKEN_INVALID = "token_invalid"
    PERMISSION_DENIED = "permission_denied"
    LOGIN_THROTTLED = "login_throttled"
    DATABASE_UNAVAILABLE = "database_unavailable"
    DEPENDENCY_UNAVAILABLE = "dependency_unavailable"
    COMMIT_OUTCOME_UNKNOWN = "commit_outcome_unknown"
    INTERNAL = "internal"


_CATALOG: dict[Language, dict[MessageKey, str]] = {
    Language.EN: {
        MessageKey.VALIDATION_FAILED: "validation failed ({count})",
        MessageKey.FIELD_REQUIRED: "{field} is required",
        MessageKey.FIELD_TOO_LONG: "{field} must be at most {max} characters",
        MessageKey.FIELD_TOO_LONG_BYTES: "{field} must be at most {max} bytes",
        MessageKey.FIELD_BAD_CHARACTERS: "{field} contains characters that are not allowed",
        MessageKey.FIELD_OUT_OF_RANGE: "{field} is out of range",
        MessageKey.FIELD_NOT_POSITIVE: "{field} must be a positive number",
        MessageKey.FIELD_NOT_NUMBER: "{field} must be a finite number",
        MessageKey.FIELD_NOT_ALLOWED: "{field} has a value that is not allowed",
        MessageKey.FIELD_DUPLICATE: "{field} repeats a value given earlier in the request",
        MessageKey.TOO_MANY_ITEMS: "{field} may hold at most {max} items",
        MessageKey.EMAIL_INVALID: "{field} is not a valid email address",
        MessageKey.EMAIL_TAKEN: "{field} is already used by another user",
        MessageKey.VALID_THRU_NOT_AFTER_FROM: "{field} must be after valid_from",
        MessageKey.PAGE_TOKEN_INVALID: "{field} is not a page token this service issued",
        MessageKey.REQUEST_UNPARSABLE: "{field} is not a valid {message} message",
        MessageKey.RECORD_NOT_FOUND: "{entity} {id} not found",
        MessageKey.RECORD_ALREADY_EXISTS: "{entity} already exists",
        MessageKey.USER_ACTIVE_CANNOT_DELETE: "user {id} is active and cannot be deleted",
        MessageKey.PROMOTION_APPROVED_CANNOT_DELETE: (
            "promotion {id} has left its initial approval status and cannot be deleted"
        ),
        MessageKey.BAD_CREDENTIALS: "invalid email or password",
        MessageKey.TOKEN_MISSING: "authentication token missing",
        MessageKey.TOKEN_INVALID: "authentication token invalid or expired",
        MessageKey.PERMISSION_DENIED: "permission denied: your role does not allow this",
        MessageKey.LOGIN_THROTTLED: (
            "too many failed logins for this email; try again in {seconds} seconds"
        ),
        MessageKey.DATABASE_UNAVAILABLE: "database unavailable, try again later",
        MessageKey.DEPENDENCY_UNAVAILABLE: "{dependency} unavailable, try again later",
        MessageKey.COMMIT_OUTCOME_UNKNOWN: (
            "the database connection was lost while the change was being committed: it may or"
            " may not have been applied; read it back before trying again"
        ),
        MessageKey.INTERNAL: "internal error",
    },
    Language.ES: {
        MessageKey.VALIDATION_FAILED: "la validación falló ({count})",
        MessageKey.FIELD_REQUIRED: "{field} es obligatorio",
        MessageKey.FIELD_TOO_LONG: "{field} debe tener como máximo {max} caracteres",
        MessageKey.FIELD_TOO_LONG_BYTES: "{field} debe tener como máximo {max} bytes",
        MessageKey.FIELD_BAD_CHARACTERS: "{field} contiene caracteres no permitidos",
        MessageKey.FIELD_OUT_OF_RANGE: "{field} está fuera de rango",
        MessageKey.FIELD_NOT_POSITIVE: "{field} debe ser un número positivo",
        MessageKey.FIELD_NOT_NUMBER: "{field} debe ser un número finito",
        MessageKey.FIELD_NOT_ALLOWED: "{field} tiene un valor no permitido",
        MessageKey.FIELD_DUPLICATE: "{field} repite un valor ya dado en la solicitud",
        MessageKey.TOO_MANY_ITEMS: "{field} admite como máximo {max} elementos",
        MessageKey.EMAIL_INVALID: "{field} no es una dirección de correo válida",
        MessageKey.EMAIL_TAKEN: "{field} ya está en uso por otro usuario",
        MessageKey.VALID_THRU_NOT_AFTER_FROM: "{field} debe ser posterior a valid_from",
        MessageKey.PAGE_TOKEN_INVALID: "{field} no es un token de página emitido por este servicio",
        MessageKey.REQUEST_UNPARSABLE: "{field} no es un mensaje {message} válido",
        MessageKey.RECORD_NOT_FOUND: "{entity} {id} no encontrado",
        MessageKey.RECORD_ALREADY_EXISTS: "{entity} ya existe",
        MessageKey.USER_ACTIVE_CANNOT_DELETE: "el usuario {id} está activo y no se puede eliminar",
        MessageKey.PROMOTION_APPROVED_CANNOT_DELETE: (
            "la promoción {id} ya no está en su estado de aprobación inicial y no se puede eliminar"
        ),
        MessageKey.BAD_CREDENTIALS: "correo o contraseña inválidos",
        MessageKey.TOKEN_MISSING: "falta el token de autenticación",
        MessageKey.TOKEN_INVALID: "token de autenticación inválido o vencido",
        MessageKey.PERMISSION_DENIED: "permiso denegado: su rol no lo permite",
        MessageKey.LOGIN_THROTTLED: (
            "demasiados inicios de sesión fallidos para este correo; inténtelo de nuevo en"
            " {seconds} segundos"
        ),
        MessageKey.DATABASE_UNAVAILABLE: "base de datos no disponible, intente más tarde",
        MessageKey.DEPENDENCY_UNAVAILABLE: "{dependency} no disponible, intente más tarde",
        MessageKey.COMMIT_OUTCOME_UNKNOWN: (
            "se perdió la conexión con la base de datos mientras se confirmaba el cambio: puede"
            " haberse aplicado o no; consúltelo antes de volver a intentarlo"
        ),
        MessageKey.INTERNAL: "error interno",
    },
    Language.FR: {
        MessageKey.VALIDATION_FAILED: "la validation a échoué ({count})",
        MessageKey.FIELD_REQUIRED: "{field} est obligatoire",
        MessageKey.FIELD_TOO_LONG: "{field} doit comporter au plus {max} caractères",
        MessageKey.FIELD_TOO_LONG_BYTES: "{field} doit comporter au plus {max} octets",
        MessageKey.FIELD_BAD_CHARACTERS: "{field} contient des caractères non autorisés",
        MessageKey.FIELD_OUT_OF_RANGE: "{field} est hors limites",
        MessageKey.FIELD_NOT_POSITIVE: "{field} doit être un nombre positif",
        MessageKey.FIELD_NOT_NUMBER: "{field} doit être un nombre fini",
        MessageKey.FIELD_NOT_ALLOWED: "{field} a une valeur non autorisée",
        MessageKey.FIELD_DUPLICATE: "{field} répète une valeur déjà donnée dans la requête",
        MessageKey.TOO_MANY_ITEMS: "{field} accepte au plus {max} éléments",
        MessageKey.EMAIL_INVALID: "{field} n'est pas une adresse e-mail valide",
        MessageKey.EMAIL_TAKEN: "{field} est déjà utilisé par un autre utilisateur",
        MessageKey.VALID_THRU_NOT_AFTER_FROM: "{field} doit être postérieur à valid_from",
        MessageKey.PAGE_TOKEN_INVALID: "{field} n'est pas un jeton de page émis par ce service",
        MessageKey.REQUEST_UNPARSABLE: "{field} n'est pas un message {message} valide",
        MessageKey.RECORD_NOT_FOUND: "{entity} {id} introuvable",
        MessageKey.RECORD_ALREADY_EXISTS: "{entity} existe déjà",
        MessageKey.USER_ACTIVE_CANNOT_DELETE: (
            "l'utilisateur {id} est actif et ne peut pas être supprimé"
        ),
        MessageKey.PROMOTION_APPROVED_CANNOT_DELETE: (
            "la promotion {id} n'est plus à son statut d'approbation initial et ne peut pas être"
            " supprimée"
        ),
        MessageKey.BAD_CREDENTIALS: "e-mail ou mot de passe invalide",
        MessageKey.TOKEN_MISSING: "jeton d'authentification manquant",
        MessageKey.TOKEN_INVALID: "jeton d'authentification invalide ou expiré",
        MessageKey.PERMISSION_DENIED: "permission refusée : votre rôle ne le permet pas",
        MessageKey.LOGIN_THROTTLED: (
            "trop de connexions échouées pour cet e-mail ; réessayez dans {seconds} secondes"
        ),
        MessageKey.DATABASE_UNAVAILABLE: "base de données indisponible, réessayez plus tard",
        MessageKey.DEPENDENCY_UNAVAILABLE: "{dependency} indisponible, réessayez plus tard",
        MessageKey.COMMIT_OUTCOME_UNKNOWN: (
            "la connexion à la base de données a été perdue pendant la validation de la"
            " modification : elle a pu être appliquée ou non ; relisez-la avant de réessayer"
        ),
        MessageKey.INTERNAL: "erreur interne",
    },
}


def render(key: MessageKey, language: Language, **params: Any) -> str:
    """The message for key in language, with params filled in."""
    return _CATALOG[language][key].format(**params)


def catalog(language: Language) -> dict[MessageKey, str]:
    """The whole catalog of one language (for completeness checks)."""
    return dict(_CATALOG[language])
