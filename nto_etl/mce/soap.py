"""The one funnel every SOAP call goes through.

Builds the zeep client once (strict parsing, an operation timeout, one requests
session), adds the authentication header, turns SOAP faults and HTTP failures into
typed errors, retries what is safe to retry with exponential backoff and jitter, and
refreshes an expired token once.
"""

from __future__ import annotations

import logging
from typing import Any

import requests
import zeep
import zeep.exceptions
from lxml import etree
from requests.adapters import HTTPAdapter
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_random_exponential
from zeep.plugins import HistoryPlugin
from zeep.transports import Transport

from nto_etl.mce import redact
from nto_etl.mce.auth import OAuth2Auth, SoapAuth, UsernameTokenAuth
from nto_etl.mce.errors import (
    MceAuthenticationError,
    MceConfigurationError,
    MceError,
    MceRateLimitedError,
    MceTransientError,
    MceUnreachableError,
    error_for_code,
)
from nto_etl.mce.settings import MceSettings
from nto_etl.mce.wsdl import BINDING, FAULT_NS, WSDL_PATH

log = logging.getLogger(__name__)
redact.install()


def build_session(settings: MceSettings) -> requests.Session:
    """One HTTP session (connection pool) for the token endpoint and SOAP calls."""
    session = requests.Session()
    session.verify = settings.verify_tls
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=8)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def build_auth(settings: MceSettings, session: requests.Session) -> SoapAuth:
    if settings.auth_mode == "oauth2":
        assert settings.auth_url is not None
        return OAuth2Auth(
            session,
            settings.auth_url,
            settings.client_id,
            settings.client_secret,
            settings.account_id,
            timeout=settings.connect_timeout + 20,
        )
    assert settings.soap_url is not None
    return UsernameTokenAuth(settings.username, settings.password, settings.soap_url)


class _SafeToRetry(Exception):
    """Wraps an error that may be retried for the operation at hand."""

    def __init__(self, error: MceError) -> None:
        super().__init__(str(error))
        self.error = error


class SoapClient:
    """zeep client + authentication + error mapping + retries, for one business unit."""

    def __init__(
        self,
        settings: MceSettings,
        *,
        session: requests.Session | None = None,
        backoff_seconds: float = 0.5,
    ) -> None:
        self.settings = settings
        self.session = session or build_session(settings)
        self.auth = build_auth(settings, self.session)
        self.history = HistoryPlugin(maxlen=4)
        transport = Transport(
            session=self.session,
            timeout=settings.connect_timeout + 20,
            operation_timeout=settings.operation_timeout,
        )
        self.zeep = zeep.Client(
            str(WSDL_PATH),
            transport=transport,
            settings=zeep.Settings(strict=True, xml_huge_tree=True),
            plugins=[self.history],
            wsse=self.auth.wsse(),
        )
        self.types = self.zeep.type_factory("ns0")
        self._backoff = backoff_seconds
        self._services: dict[str, Any] = {}

    @property
    def endpoint(self) -> str:
        url = self.settings.soap_url or self.auth.soap_endpoint()
        if not url:
            raise MceConfigurationError(
                "no SOAP endpoint: set NTO_MCE_SOAP_URL or use a token that returns soap_instance_url"
            )
        return url

    def _service(self) -> Any:
        endpoint = self.endpoint
        if endpoint not in self._services:
            self._services[endpoint] = self.zeep.create_service(BINDING, endpoint)
        return self._services[endpoint]

    def call_raw(self, operation: str, *, idempotent: bool, **request: Any) -> bytes:
        """The same call through the same funnel, returning the answer's XML unparsed (for fast paths)."""
        content: bytes = self.call(operation, idempotent=idempotent, _raw=True, **request)
        return content

    def call(self, operation: str, *, idempotent: bool, **request: Any) -> Any:
        """Call one SOAP operation and return zeep's response object.

        `idempotent` says whether a request that may have reached MCE can be sent again
        (Retrieve, upserts) or not (inserts, starting an import): only the latter's
        unambiguous failures (throttling, maintenance, refused connection) are retried.
        """
        refreshed = False
        retrying = Retrying(
            stop=stop_after_attempt(self.settings.max_retries + 1),
            wait=wait_random_exponential(multiplier=self._backoff, max=30),
            retry=retry_if_exception(lambda exc: isinstance(exc, _SafeToRetry)),
            reraise=True,
        )
        try:
            for attempt in retrying:
                with attempt:
                    try:
                        return self._call_once(operation, idempotent, request)
                    except MceAuthenticationError:
                        if refreshed or not isinstance(self.auth, OAuth2Auth):
                            raise
                        refreshed = True
                        log.info("%s refused the token; fetching a new one and retrying once", operation)
                        self.auth.invalidate()
                        return self._call_once(operation, idempotent, request)
        except _SafeToRetry as exc:
            raise exc.error from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _call_once(self, operation: str, idempotent: bool, request: dict[str, Any]) -> Any:
        request = dict(request)
        raw = request.pop("_raw", False)
        try:
            if raw:
                with self.zeep.settings(raw_response=True):
                    response = getattr(self._service(), operation)(
                        **request, _soapheaders=self.auth.soap_headers()
                    )
                if response.status_code != 200:
                    raise _fault_from(response.status_code, response.content)
                return response.content
            return getattr(self._service(), operation)(**request, _soapheaders=self.auth.soap_headers())
        except zeep.exceptions.Fault as fault:
            error = fault_to_error(fault, operation)
            raise _retryable(error, sent=True, idempotent=idempotent) from None
        except zeep.exceptions.TransportError as exc:
            error = http_to_error(exc.status_code, operation)
            raise _retryable(error, sent=True, idempotent=idempotent) from None
        except requests.exceptions.ConnectTimeout:
            error = MceUnreachableError(f"connection to {self.endpoint} timed out", operation=operation)
            raise _retryable(error, sent=False, idempotent=idempotent) from None
        except requests.exceptions.ConnectionError as exc:
            sent = not _refused(exc)
            error = MceUnreachableError(
                f"cannot reach {self.endpoint}: {type(exc).__name__}", operation=operation
            )
            raise _retryable(error, sent=sent, idempotent=idempotent) from None
        except requests.exceptions.Timeout:
            error = MceTransientError(
                f"no answer within {self.settings.operation_timeout}s from {self.endpoint}",
                operation=operation,
            )
            raise _retryable(error, sent=True, idempotent=idempotent) from None
        except (zeep.exceptions.XMLSyntaxError, zeep.exceptions.ValidationError) as exc:
            raise MceError(f"unreadable answer from MCE: {exc}", operation=operation) from None


def _refused(exc: requests.exceptions.ConnectionError) -> bool:
    """True when the connection never opened, so the request was certainly not processed."""
    text = repr(exc)
    return "NewConnectionError" in text or "Connection refused" in text or "NameResolution" in text


def _retryable(error: MceError, *, sent: bool, idempotent: bool) -> Exception:
    if (sent and isinstance(error, MceUnreachableError)) or "no answer within" in str(error):
        error.maybe_processed = True
    if isinstance(error, MceAuthenticationError):
        return error
    # Throttling and maintenance faults mean MCE did not process the request.
    unprocessed = isinstance(error, MceRateLimitedError) or error.code in (9, 10) or not sent
    if isinstance(error, MceTransientError | MceUnreachableError) and (idempotent or unprocessed):
        log.warning("retrying after %s", error)
        return _SafeToRetry(error)
    return error


def _fault_from(status: int, content: bytes) -> Exception:
    """A raw non-200 answer as zeep would have raised it (a Fault, or a TransportError)."""
    try:
        envelope = etree.fromstring(content, etree.XMLParser(resolve_entities=False, no_network=True))
        found = envelope.find(".//{http://schemas.xmlsoap.org/soap/envelope/}Fault")
    except etree.XMLSyntaxError:
        found = None
    if found is None:
        return zeep.exceptions.TransportError(status_code=status, content=content)
    return zeep.exceptions.Fault(
        message=found.findtext("faultstring") or "",
        code=found.findtext("faultcode"),
        actor=found.findtext("faultactor"),
        detail=found.find("detail"),
    )


def fault_to_error(fault: zeep.exceptions.Fault, operation: str) -> MceError:
    """A SOAP fault as a typed error: Security faults, Client faults, Server faults with apifault codes."""
    code_text = str(fault.code or "")
    message = str(fault.message or "").strip()
    if "Security" in code_text:
        return MceAuthenticationError(message or "Login failed", operation=operation)
    api_code: int | None = None
    if fault.detail is not None:
        found = fault.detail.find(f".//{{{FAULT_NS}}}apifault")
        if found is not None:
            code_node = found.find(f"{{{FAULT_NS}}}Code")
            msg_node = found.find(f"{{{FAULT_NS}}}Message")
            if code_node is not None and (code_node.text or "").strip().isdigit():
                api_code = int(code_node.text or "0")
            if msg_node is not None and msg_node.text:
                message = msg_node.text.strip()
    if api_code is None and code_text.endswith("Client"):
        return MceError(f"MCE refused the request: {message}", operation=operation)
    if api_code is None:
        return MceTransientError(message or "server fault without a code", operation=operation)
    return error_for_code(api_code, message, operation)


def http_to_error(status: int, operation: str) -> MceError:
    if status in (401, 403):
        return MceAuthenticationError(f"HTTP {status}", operation=operation)
    if status == 500:
        # A bare HTTP 500 is how MCE answers throttled SOAP requests.
        return MceRateLimitedError("HTTP 500 without a SOAP fault (throttled)", operation=operation)
    if status >= 500:
        return MceTransientError(f"HTTP {status}", operation=operation)
    return MceError(f"HTTP {status}", operation=operation)


def to_xml(element: etree._Element) -> str:
    return etree.tostring(element, encoding="unicode")
