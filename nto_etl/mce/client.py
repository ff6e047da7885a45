"""Typed MCE operations over the SOAP funnel: status, generic CRUD, paged Retrieve, Perform, Execute.

Plain Python, no Dagster: the Dagster resource wraps an `MceClient`, tests use it
directly against the local MCE.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from lxml import etree

from nto_etl.mce.errors import (
    FieldError,
    MceError,
    MceNotFoundError,
    MceUnavailableError,
    MceValidationError,
    error_for_code,
)
from nto_etl.mce.settings import MceSettings
from nto_etl.mce.soap import SoapClient

log = logging.getLogger(__name__)
T = TypeVar("T")

# Documented soft limit of objects per synchronous Create/Update/Delete request.
SYNC_BATCH_SIZE = 50
RETRIEVE_PAGE_SIZE = 2500


@dataclass(frozen=True)
class SystemStatus:
    status: str
    message: str


@dataclass(frozen=True)
class ObjectResult:
    """The outcome of one object in a Create/Update/Delete/Perform request."""

    ordinal: int
    status_code: str
    message: str
    error_code: int | None
    new_object_id: str | None
    field_errors: tuple[FieldError, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status_code == "OK"


@dataclass(frozen=True)
class UserToken:
    """Entity direct login: a short-lived token and the URL the CRM posts it to."""

    token: str
    login_url: str


class MceClient:
    """One business unit's SOAP API, with typed results and errors."""

    def __init__(self, settings: MceSettings, *, soap: SoapClient | None = None, **soap_options: Any) -> None:
        self.soap = soap or SoapClient(settings, **soap_options)
        self.types = self.soap.types

    # -- status ---------------------------------------------------------------------------------
    def system_status(self) -> SystemStatus:
        response = self.soap.call("GetSystemStatus", idempotent=True)
        results = response.Results.Result if response.Results else []
        status = results[0].SystemStatus if results else None
        return SystemStatus(
            status=str(status or response.OverallStatus), message=response.OverallStatusMessage or ""
        )

    def ping(self) -> SystemStatus:
        """GetSystemStatus, failing clearly unless MCE says OK."""
        status = self.system_status()
        if status.status != "OK":
            raise MceUnavailableError(
                f"MCE system status is {status.status} {status.message}".strip(), operation="GetSystemStatus"
            )
        return status

    # -- generic CRUD ---------------------------------------------------------------------------
    def create(self, objects: Sequence[Any], *, options: dict[str, Any] | None = None) -> list[ObjectResult]:
        return self._write("Create", objects, options or {}, idempotent=False)

    def update(self, objects: Sequence[Any], *, options: dict[str, Any] | None = None) -> list[ObjectResult]:
        return self._write("Update", objects, options or {}, idempotent=True)

    def delete(self, objects: Sequence[Any]) -> list[ObjectResult]:
        return self._write("Delete", objects, {}, idempotent=True)

    def _write(
        self, operation: str, objects: Sequence[Any], options: dict[str, Any], *, idempotent: bool
    ) -> list[ObjectResult]:
        response = self.soap.call(operation, idempotent=idempotent, Options=options, Objects=list(objects))
        return [object_result(r, i) for i, r in enumerate(response.Results or [])]

    def retrieve(
        self,
        object_type: str,
        properties: Sequence[str],
        filter: Any | None = None,
        *,
        batch_size: int | None = None,
    ) -> Iterator[list[Any]]:
        """Pages of objects; follows `MoreDataAvailable` with `ContinueRequest` until done."""

        def fetch(request: dict[str, Any]) -> tuple[str, str, list[Any]]:
            response = self.soap.call("Retrieve", idempotent=True, RetrieveRequest=request)
            return (
                str(response.OverallStatus or ""),
                str(response.RequestID or ""),
                list(response.Results or []),
            )

        return self._pages(object_type, properties, filter, batch_size, fetch)

    def retrieve_pages_raw(
        self,
        object_type: str,
        properties: Sequence[str],
        filter: Any | None = None,
        *,
        batch_size: int | None = None,
    ) -> Iterator[list[dict[str, str | None]]]:
        """Retrieve pages parsed straight from the XML (lxml): each object's Properties as a dict.

        The hot path for data-extension rows: zeep's object deserialization costs far more than
        the request. Paging, errors and retries are the same as `retrieve`.
        """

        def fetch(request: dict[str, Any]) -> tuple[str, str, list[dict[str, str | None]]]:
            return parse_retrieve_page(
                self.soap.call_raw("Retrieve", idempotent=True, RetrieveRequest=request)
            )

        return self._pages(object_type, properties, filter, batch_size, fetch)

    @staticmethod
    def _pages(
        object_type: str,
        properties: Sequence[str],
        filter: Any | None,
        batch_size: int | None,
        fetch: Callable[[dict[str, Any]], tuple[str, str, list[T]]],
    ) -> Iterator[list[T]]:
        """The paging loop: first request, then ContinueRequest with the RequestID while MoreDataAvailable."""
        request: dict[str, Any] = {"ObjectType": object_type, "Properties": list(properties)}
        if filter is not None:
            request["Filter"] = filter
        if batch_size:
            request["Options"] = {"BatchSize": min(batch_size, RETRIEVE_PAGE_SIZE)}
        while True:
            status, request_id, page = fetch(request)
            if status not in ("OK", "MoreDataAvailable"):
                raise retrieve_error(status, object_type)
            yield page
            if status != "MoreDataAvailable":
                return
            request = {
                "ObjectType": object_type,
                "Properties": list(properties),
                "ContinueRequest": request_id,
            }

    def retrieve_all(
        self, object_type: str, properties: Sequence[str], filter: Any | None = None
    ) -> list[Any]:
        return [obj for page in self.retrieve(object_type, properties, filter) for obj in page]

    def perform(self, action: str, definitions: Sequence[Any]) -> list[Any]:
        """Perform `action` on definitions; returns zeep PerformResults (with `Task`), raising on errors."""
        response = self.soap.call(
            "Perform", idempotent=False, Action=action, Definitions={"Definition": list(definitions)}
        )
        results = list(response.Results.Result) if response.Results else []
        failed = [r for r in results if r.StatusCode != "OK"]
        if failed or str(response.OverallStatus) not in ("OK",):
            first = failed[0] if failed else None
            raise error_for_code(
                first.ErrorCode if first else None,
                (first.StatusMessage if first else None) or str(response.OverallStatus),
                "Perform",
            )
        return results

    def execute(self, name: str, parameters: dict[str, str] | None = None) -> list[Any]:
        params = [self.types.APIProperty(Name=k, Value=v) for k, v in (parameters or {}).items()]
        response = self.soap.call(
            "Execute", idempotent=False, Requests=[{"Name": name, "Parameters": params}]
        )
        results = list(response.Results or [])
        if response.OverallStatus != "OK" or any(r.StatusCode != "OK" for r in results):
            first = next((r for r in results if r.StatusCode != "OK"), None)
            raise error_for_code(
                first.ErrorCode if first else None,
                (first.StatusMessage if first else None) or str(response.OverallStatus),
                f"Execute {name}",
            )
        return results

    def get_user_token(self) -> UserToken:
        """`Execute GetUserToken`: the user token (valid ~30 s) and the login URL for entity direct login."""
        results = self.execute("GetUserToken")
        values = [p.Value for p in (results[0].Results or [])] if results else []
        if len(values) < 2:
            raise MceError("GetUserToken returned no token", operation="Execute GetUserToken")
        return UserToken(token=values[0], login_url=values[1])

    # -- filters --------------------------------------------------------------------------------
    def simple_filter(self, prop: str, operator: str, *values: Any) -> Any:
        """A SimpleFilterPart; datetimes go to DateValue, everything else to Value."""
        from datetime import date, datetime

        if values and all(isinstance(v, date | datetime) for v in values):
            return self.types.SimpleFilterPart(Property=prop, SimpleOperator=operator, DateValue=list(values))
        return self.types.SimpleFilterPart(
            Property=prop, SimpleOperator=operator, Value=[str(v) for v in values]
        )

    def all_of(self, *parts: Any) -> Any:
        return self._combine("AND", parts)

    def any_of(self, *parts: Any) -> Any:
        return self._combine("OR", parts)

    def _combine(self, logical: str, parts: Iterable[Any]) -> Any:
        parts = list(parts)
        combined = parts[0]
        for part in parts[1:]:
            combined = self.types.ComplexFilterPart(
                LeftOperand=combined, LogicalOperator=logical, RightOperand=part
            )
        return combined


def object_result(result: Any, index: int) -> ObjectResult:
    """A CreateResult/UpdateResult/DeleteResult (or a DataExtension* subtype) as an ObjectResult."""
    ordinal = result.OrdinalID if result.OrdinalID is not None else index
    field_errors: list[FieldError] = []
    for attr in ("ValueErrors", "KeyErrors"):
        container = getattr(result, attr, None)
        for err in (getattr(container, attr[:-1], None) or []) if container else []:
            field_errors.append(FieldError(ordinal, err.Name or "", err.ErrorCode, err.ErrorMessage or ""))
    return ObjectResult(
        ordinal=ordinal,
        status_code=str(result.StatusCode or ""),
        message=str(result.StatusMessage or getattr(result, "ErrorMessage", "") or ""),
        error_code=result.ErrorCode,
        new_object_id=getattr(result, "NewObjectID", None),
        field_errors=tuple(field_errors),
    )


def raise_for_results(results: Sequence[ObjectResult], operation: str) -> None:
    """Raise the typed error of the first failed object, with every object's field errors."""
    failed = [r for r in results if not r.ok]
    if not failed:
        return
    first = failed[0]
    error = error_for_code(first.error_code, first.message, operation)
    if isinstance(error, MceValidationError):
        error.field_errors = [fe for r in failed for fe in r.field_errors]
    raise error


_NS = "{http://exacttarget.com/wsdl/partnerAPI}"


def parse_retrieve_page(xml: bytes) -> tuple[str, str, list[dict[str, str | None]]]:
    """(OverallStatus, RequestID, rows) of a RetrieveResponseMsg, each row its Properties' Name -> Value."""
    root = etree.fromstring(xml, _PARSER)
    message = root.find(f".//{_NS}RetrieveResponseMsg")
    if message is None:
        raise MceError("the Retrieve answer has no RetrieveResponseMsg", operation="Retrieve")
    rows: list[dict[str, str | None]] = []
    properties, property_, name_tag, value_tag = (
        f"{_NS}Properties",
        f"{_NS}Property",
        f"{_NS}Name",
        f"{_NS}Value",
    )
    for result in message.iterchildren(f"{_NS}Results"):
        row: dict[str, str | None] = {}
        for container in result.iterchildren(properties):
            for prop in container.iterchildren(property_):
                name: str | None = None
                value: str | None = None
                for child in prop:  # Name, then Value: read by position, not by search
                    if child.tag == name_tag:
                        name = child.text
                    elif child.tag == value_tag:
                        value = child.text
                if name is not None:
                    row[name] = value
        rows.append(row)
    status = str(message.findtext(f"{_NS}OverallStatus") or "")
    return status, str(message.findtext(f"{_NS}RequestID") or ""), rows


_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


def retrieve_error(status: str, object_type: str) -> MceError:
    text = status.removeprefix("Error:").strip() or status
    lowered = text.lower()
    if "does not exist" in lowered or "not found" in lowered or "unknown" in lowered:
        return MceNotFoundError(text, operation=f"Retrieve {object_type}")
    return MceValidationError(text, operation=f"Retrieve {object_type}")
