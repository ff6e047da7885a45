"""SOAP messages in and out, parsed and rendered with the project's WSDL.

Using the same schema as the client means every answer is schema-valid by
construction, and any client built from the published WSDL reads it unchanged.
"""

from __future__ import annotations

from typing import Any

import zeep
from lxml import etree

from nto_etl.mce.wsdl import FAULT_NS, PARTNER_NS, WSDL_PATH

SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
WSSE_NS = "http://docs.oasis-open.org/wss/2004/01/oasis-200401-wss-wssecurity-secext-1.0.xsd"

# SOAPAction -> (request element, response element), as bound in the WSDL.
OPERATIONS: dict[str, tuple[str, str]] = {
    "Create": ("CreateRequest", "CreateResponse"),
    "Retrieve": ("RetrieveRequestMsg", "RetrieveResponseMsg"),
    "Update": ("UpdateRequest", "UpdateResponse"),
    "Delete": ("DeleteRequest", "DeleteResponse"),
    "Describe": ("DefinitionRequestMsg", "DefinitionResponseMsg"),
    "Execute": ("ExecuteRequestMsg", "ExecuteResponseMsg"),
    "Perform": ("PerformRequestMsg", "PerformResponseMsg"),
    "Extract": ("ExtractRequestMsg", "ExtractResponseMsg"),
    "GetSystemStatus": ("SystemStatusRequestMsg", "SystemStatusResponseMsg"),
}


class ClientFault(Exception):
    """The request is not a valid message for the operation (a soap:Client fault)."""


class SoapCodec:
    def __init__(self) -> None:
        self.client = zeep.Client(str(WSDL_PATH), settings=zeep.Settings(strict=True, xml_huge_tree=True))
        self.types = self.client.type_factory("ns0")
        self._schema = self.client.wsdl.types

    def type_of(self, name: str) -> Any:
        return self.client.get_type(f"{{{PARTNER_NS}}}{name}")

    def parse(self, operation: str, body_child: etree._Element) -> Any:
        request_name, _ = OPERATIONS[operation]
        expected = f"{{{PARTNER_NS}}}{request_name}"
        if body_child.tag != expected:
            raise ClientFault(
                f"expected {request_name} for SOAPAction {operation}, got {etree.QName(body_child).localname}"
            )
        element = self.client.get_element(expected)
        try:
            return element.parse(body_child, self._schema)
        except (zeep.exceptions.Error, ValueError, TypeError) as exc:
            raise ClientFault(f"invalid {request_name}: {exc}") from None

    def response(self, operation: str, value: dict[str, Any]) -> bytes:
        _, response_name = OPERATIONS[operation]
        element = self.client.get_element(f"{{{PARTNER_NS}}}{response_name}")
        envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap={"soap": SOAP_ENV})
        body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
        element.render(body, element(**value))
        return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")


def fault(
    faultcode: str, faultstring: str, *, api_code: int | None = None, actor: str | None = None
) -> bytes:
    """A SOAP 1.1 fault; Server faults carry MCE's <apifault> detail with its code."""
    nsmap = {"soap": SOAP_ENV}
    if faultcode.startswith("q0:"):
        nsmap["q0"] = WSSE_NS
    envelope = etree.Element(f"{{{SOAP_ENV}}}Envelope", nsmap=nsmap)
    body = etree.SubElement(envelope, f"{{{SOAP_ENV}}}Body")
    node = etree.SubElement(body, f"{{{SOAP_ENV}}}Fault")
    etree.SubElement(node, "faultcode").text = faultcode
    etree.SubElement(node, "faultstring").text = faultstring
    if actor:
        etree.SubElement(node, "faultactor").text = actor
    detail = etree.SubElement(node, "detail")
    if api_code is not None:
        api = etree.SubElement(detail, f"{{{FAULT_NS}}}apifault", nsmap={None: FAULT_NS})  # type: ignore[dict-item]
        etree.SubElement(api, f"{{{FAULT_NS}}}Code").text = str(api_code)
        etree.SubElement(api, f"{{{FAULT_NS}}}Message").text = faultstring
    return etree.tostring(envelope, xml_declaration=True, encoding="utf-8")
