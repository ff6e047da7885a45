"""Typed MCE errors: each carries MCE's own code and message and says what to do.

Callers catch by kind (authentication, not found, validation, throttling, transient)
rather than parsing messages.
"""

from __future__ import annotations

from dataclasses import dataclass, field


class MceError(Exception):
    """Base of every error raised by the MCE client."""

    # True when the request may have been processed although no answer came (timeout, dropped
    # connection): the caller cannot tell, so it must look before doing the work again.
    maybe_processed = False

    def __init__(self, message: str, *, code: int | None = None, operation: str | None = None) -> None:
        self.code = code
        self.operation = operation
        self.mce_message = message
        where = f"{operation}: " if operation else ""
        coded = f" (MCE code {code})" if code is not None else ""
        super().__init__(f"{where}{message}{coded}")


class MceConfigurationError(MceError):
    """The client is configured wrongly (missing endpoint, credentials, options)."""


class MceAuthenticationError(MceError):
    """Credentials or token refused: check the client id/secret or the API user's permissions."""


class MceUnreachableError(MceError):
    """The endpoint could not be reached (DNS, refused connection, TLS, timeout)."""


class MceTransientError(MceError):
    """A temporary server-side failure (HTTP 5xx, code 2 unexpected, 13 database); safe to retry later."""


class MceRateLimitedError(MceTransientError):
    """MCE throttled the request (code 17 or HTTP 500 while throttled); back off and retry."""


class MceUnavailableError(MceTransientError):
    """MCE is in maintenance or an unplanned outage (GetSystemStatus not OK, codes 9/10)."""


class MceNotFoundError(MceError):
    """The object named (data extension, import definition, ...) does not exist in this business unit."""


class MceValidationError(MceError):
    """MCE refused the request or a row as invalid (e.g. 310007 DataExtensionValidationError, 43060)."""

    def __init__(
        self,
        message: str,
        *,
        code: int | None = None,
        operation: str | None = None,
        field_errors: list[FieldError] | None = None,
    ) -> None:
        super().__init__(message, code=code, operation=operation)
        self.field_errors = field_errors or []


@dataclass(frozen=True)
class FieldError:
    """One field MCE refused in one object (row) of a request."""

    ordinal: int
    name: str
    code: int | None
    message: str


@dataclass(frozen=True)
class ImportFailure:
    """What an import run reported when it did not complete cleanly."""

    task_id: str
    status: str
    total_rows: int
    successful: int
    errors: int
    duplicates: int
    message: str = ""
    extra: dict[str, object] = field(default_factory=dict)


class MceImportError(MceError):
    """An import ended in Error, or completed with more errors than allowed; counts attached."""

    def __init__(self, failure: ImportFailure, *, code: int | None = None) -> None:
        self.failure = failure
        super().__init__(
            f"import task {failure.task_id} ended {failure.status}: {failure.errors} of "
            f"{failure.total_rows} rows in error, {failure.successful} imported"
            + (f" ({failure.message})" if failure.message else ""),
            code=code,
            operation="ImportDefinition",
        )


class MceTimeoutError(MceError):
    """An asynchronous MCE task (import, query) did not finish before the deadline."""


# Documented codes -> error kind. Anything unlisted is a plain MceError with its code.
_CODE_KINDS: dict[int, type[MceError]] = {
    2: MceTransientError,
    9: MceUnavailableError,
    10: MceUnavailableError,
    11: MceAuthenticationError,
    12: MceAuthenticationError,
    13: MceTransientError,
    17: MceRateLimitedError,
    310002: MceNotFoundError,
    310004: MceNotFoundError,
    310006: MceValidationError,
    310007: MceValidationError,
    43010: MceNotFoundError,
    43060: MceValidationError,
    70000: MceValidationError,
    70001: MceValidationError,
    70002: MceValidationError,
    70003: MceNotFoundError,
    70004: MceValidationError,
    71003: MceValidationError,
}


def error_for_code(code: int | None, message: str, operation: str | None = None) -> MceError:
    """The typed error for an MCE error code (fault code or per-object ErrorCode)."""
    kind = _CODE_KINDS.get(code or 0, MceError)
    if 310001 <= (code or 0) <= 310007 and kind is MceError:
        kind = MceValidationError
    if 43000 <= (code or 0) <= 43060 and kind is MceError:
        kind = MceValidationError
    return kind(message, code=code, operation=operation)
