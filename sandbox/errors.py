"""The sandbox's HTTP errors, with the status codes and JSON bodies the real Airtable API uses."""

from __future__ import annotations

from typing import Any

# Word for word what api.airtable.com answers for an unknown base, and (with personal access
# tokens) for an unknown table too: the API will not say whether the model exists.
MODEL_NOT_FOUND_MESSAGE = (
    "Invalid permissions, or the requested model was not found. Check that both your user and "
    "your token have the required permissions, and that the model names and/or ids are correct."
)


class ApiError(Exception):
    """An error answer: ``status`` and the JSON ``body`` to send."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        super().__init__(f"{status} {body}")
        self.status = status
        self.body = body


def typed(status: int, error_type: str, message: str | None = None) -> ApiError:
    """Return the common ``{"error": {"type": …, "message": …}}`` shape."""
    error: dict[str, Any] = {"type": error_type}
    if message is not None:
        error["message"] = message
    return ApiError(status, {"error": error})


def authentication_required() -> ApiError:
    """401 for a missing or unknown token: the API answers both the same way today."""
    return typed(401, "AUTHENTICATION_REQUIRED", "Authentication required")


def model_not_found() -> ApiError:
    """403 for an unknown base (and, with personal access tokens, an unknown table)."""
    return typed(403, "INVALID_PERMISSIONS_OR_MODEL_NOT_FOUND", MODEL_NOT_FOUND_MESSAGE)


def table_not_found(table: str, base_id: str) -> ApiError:
    """The 404 that API keys used to get for an unknown table (``legacy_table_not_found``)."""
    return typed(404, "TABLE_NOT_FOUND", f"Could not find table {table} in application {base_id}")


def record_not_found() -> ApiError:
    """404 for an unknown record id (the body recorded from the real API)."""
    return typed(404, "MODEL_ID_NOT_FOUND", "Record not found")


def route_not_found() -> ApiError:
    """404 for a path the API does not know: the real body is a bare string."""
    return ApiError(404, {"error": "NOT_FOUND"})


def rate_limited() -> ApiError:
    """429: note the different ``errors`` list shape, unlike every other error."""
    return ApiError(
        429,
        {"errors": [{"error": "RATE_LIMIT_REACHED",
                     "message": "Rate limit exceeded. Please try again later"}]},
    )


def invalid_request(message: str) -> ApiError:
    """422 for a parameter the API refuses."""
    return typed(422, "INVALID_REQUEST_UNKNOWN", message)


def unknown_field(name: str) -> ApiError:
    """422 for a field name (or id) the table does not have."""
    return typed(422, "UNKNOWN_FIELD_NAME", f'Unknown field name: "{name}"')


def invalid_formula(detail: str) -> ApiError:
    """422 for a ``filterByFormula`` the sandbox cannot parse or does not support."""
    return typed(
        422, "INVALID_FILTER_BY_FORMULA",
        f"The formula for filtering records is invalid: {detail}",
    )


def iterator_not_available() -> ApiError:
    """422 for an unknown, garbled or expired ``offset``."""
    return typed(422, "LIST_RECORDS_ITERATOR_NOT_AVAILABLE", "Iterator not available")


def url_too_long(limit: int) -> ApiError:
    """414 for a URL over Airtable's limit (the type name is the sandbox's: the real answer
    comes from Airtable's front servers, not as the API's JSON error)."""
    return typed(414, "URL_TOO_LONG",
                 f"The request URL is longer than {limit} characters: use POST …/listRecords")


def invalid_value(field: str, detail: str) -> ApiError:
    """422 for a value a field cannot hold."""
    return typed(422, "INVALID_VALUE_FOR_COLUMN", f'Field "{field}" {detail}')


SERVER_ERRORS: dict[int, tuple[str, str]] = {
    500: ("SERVER_ERROR", "The server encountered an unexpected condition."),
    502: ("BAD_GATEWAY",
          "Airtable's servers are restarting or an unexpected outage is in progress."),
    503: ("SERVICE_UNAVAILABLE", "The server could not process your request in time."),
}


def server_error(status: int) -> ApiError:
    """An injected 5xx, with a JSON body like the API's."""
    error_type, message = SERVER_ERRORS[status]
    return typed(status, error_type, message)
