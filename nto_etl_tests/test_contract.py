"""The project's WSDL, the client's requests and the local MCE's answers, held against the published WSDL.

The published files are reference material outside the project (they may not be copied
into it): ../shared/mce/, or the folder NTO_MCE_REFERENCE_DIR names. Without them these
tests fail, naming the missing file: a contract that was not checked is not a pass.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from copy import deepcopy
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import zeep
from lxml import etree
from sshfs import SSHFileSystem
from zeep.plugins import Plugin

from nto_etl.mce import activities as act
from nto_etl.mce import data_extensions as dex
from nto_etl.mce import imports
from nto_etl.mce import tracking as trk
from nto_etl.mce.client import MceClient
from nto_etl.mce.wsdl import BINDING, FUELOAUTH_NS, WSDL_PATH
from nto_etl_tests.helpers import csv_text, make_de, put_import_file

WSDL_NS = "http://schemas.xmlsoap.org/wsdl/"
XSD_NS = "http://www.w3.org/2001/XMLSchema"
SOAP_ENV = "http://schemas.xmlsoap.org/soap/envelope/"
FAULT_URL = "https://webservice.exacttarget.com/ETFrameworkFault.xsd"


def reference_dir() -> Path:
    configured = os.environ.get("NTO_MCE_REFERENCE_DIR")
    return Path(configured) if configured else Path(__file__).resolve().parents[2] / "shared" / "mce"


@pytest.fixture(scope="module")
def published() -> tuple[Path, Path]:
    wsdl, xsd = reference_dir() / "etframework.wsdl", reference_dir() / "ETFrameworkFault.xsd"
    missing = [str(path) for path in (wsdl, xsd) if not path.exists()]
    assert not missing, (
        f"the published MCE reference {', '.join(missing)} is missing: put it in ../shared/mce/ "
        "or set NTO_MCE_REFERENCE_DIR to the folder holding etframework.wsdl and ETFrameworkFault.xsd"
    )
    return wsdl, xsd


def _schema_nodes(wsdl: Path) -> dict[tuple[str, str], etree._Element]:
    root = etree.parse(str(wsdl)).getroot()
    nodes = {}
    for schema in root.iter(f"{{{XSD_NS}}}schema"):
        if schema.get("targetNamespace") != "http://exacttarget.com/wsdl/partnerAPI":
            continue
        for node in schema:
            if isinstance(node.tag, str) and node.get("name"):
                nodes[(etree.QName(node).localname, node.get("name"))] = node
    return nodes


def _canonical(node: etree._Element) -> bytes:
    copy = deepcopy(node)
    for el in copy.iter():
        if isinstance(el.tag, str):
            el.text = (el.text or "").strip() or None
        el.tail = None
    for comment in copy.xpath("//comment()"):
        comment.getparent().remove(comment)
    return etree.tostring(copy, method="c14n")


def test_every_schema_component_is_the_published_one(published: tuple[Path, Path]) -> None:
    ours = _schema_nodes(WSDL_PATH)
    theirs = _schema_nodes(published[0])
    assert len(ours) > 100
    missing = sorted(set(ours) - set(theirs))
    assert not missing, f"not in the published WSDL: {missing}"
    different = [name for name, node in ours.items() if _canonical(node) != _canonical(theirs[name])]
    assert not different, f"differs from the published WSDL: {different}"


def test_operations_and_soap_actions_are_the_published_ones(published: tuple[Path, Path]) -> None:
    def operations(wsdl: Path) -> dict[str, tuple[str, ...]]:
        root = etree.parse(str(wsdl)).getroot()
        result = {}
        for op in root.find(f"{{{WSDL_NS}}}binding").findall(f"{{{WSDL_NS}}}operation"):
            action = op.find("{http://schemas.xmlsoap.org/wsdl/soap/}operation").get("soapAction")
            port_op = root.find(f"{{{WSDL_NS}}}portType/{{{WSDL_NS}}}operation[@name='{op.get('name')}']")
            messages = tuple(port_op.find(f"{{{WSDL_NS}}}{io}").get("message") for io in ("input", "output"))
            parts = tuple(
                root.find(f"{{{WSDL_NS}}}message[@name='{m[4:]}']/{{{WSDL_NS}}}part").get("element")
                for m in messages
            )
            result[op.get("name")] = (action, *parts)
        return result

    ours, theirs = operations(WSDL_PATH), operations(published[0])
    assert {"GetSystemStatus", "Create", "Retrieve", "Update", "Delete", "Perform", "Execute"} <= set(ours)
    assert {name: theirs[name] for name in ours} == ours


@pytest.fixture(scope="module")
def published_schema(published: tuple[Path, Path]) -> etree.XMLSchema:
    root = etree.parse(str(published[0])).getroot()
    original = root.find(f"{{{WSDL_NS}}}types/{{{XSD_NS}}}schema")
    # QName values (type="tns:X") need the WSDL root's prefixes declared on the standalone schema.
    schema = etree.Element(original.tag, dict(original.attrib), nsmap={**root.nsmap, **original.nsmap})
    schema.extend(deepcopy(child) for child in original)
    for imp in schema.findall(f"{{{XSD_NS}}}import"):
        imp.set("schemaLocation", published[1].as_uri())
    return etree.XMLSchema(schema)


class Recorder(Plugin):
    def __init__(self) -> None:
        self.sent: list[etree._Element] = []
        self.received: list[etree._Element] = []

    def egress(self, envelope: Any, http_headers: Any, operation: Any, binding_options: Any) -> Any:
        self.sent.append(deepcopy(envelope))
        return envelope, http_headers

    def ingress(self, envelope: Any, http_headers: Any, operation: Any) -> Any:
        self.received.append(deepcopy(envelope))
        return envelope, http_headers


@pytest.fixture
def recorded(client: MceClient) -> Iterator[Recorder]:
    recorder = Recorder()
    client.soap.zeep.plugins.append(recorder)
    yield recorder
    client.soap.zeep.plugins.remove(recorder)


def _body(envelope: etree._Element) -> etree._Element:
    body = envelope.find(f"{{{SOAP_ENV}}}Body")
    return etree.fromstring(etree.tostring(body[0]))


def test_client_requests_and_local_answers_validate_against_the_published_schema(
    client: MceClient,
    recorded: Recorder,
    published_schema: etree.XMLSchema,
    sftp: SSHFileSystem,
    tmp_path: Path,
    key: str,
) -> None:
    client.ping()
    make_de(client, key)
    dex.add_fields(client, key, [dex.DEField("Region", "Text", 20)])
    dex.upsert_rows(client, key, [{"SubscriberKey": "K1", "Email": "k1@example.com", "Visits": 3}])
    f = client.simple_filter
    list(
        dex.retrieve_rows(
            client,
            key,
            ["SubscriberKey"],
            client.all_of(f("Visits", "greaterThan", 1), f("Email", "isNotNull")),
        )
    )
    dex.describe_data_extension(client, key)
    dex.delete_rows(client, key, [{"SubscriberKey": "K1"}])
    put_import_file(
        sftp, tmp_path, f"{key}.csv", csv_text(["SubscriberKey", "Email"], [["K2", "k2@example.com"]])
    )
    spec = imports.ImportSpec(
        f"{key}_imp",
        key,
        f"{key}.csv",
        field_mapping="ManualMap",
        field_maps=(
            imports.FieldMap("SubscriberKey", source_ordinal=0),
            imports.FieldMap("Email", source_name="Email"),
        ),
    )
    imports.run_import(client, spec, timeout=30)
    client.get_user_token()
    make_de(client, key + "_seg")
    act.run_query(
        client,
        act.QuerySpec(f"{key}_q", f"SELECT SubscriberKey, Email FROM [{key}]", key + "_seg", key + "_seg"),
    )
    act.run_filter(client, act.FilterSpec(f"{key}_f", key, key + "_seg", f("Email", "isNotNull")))
    act.extract_data_extension(client, key, f"{key}.csv")
    act.start_file_transfer(client, "NTO_Safehouse_To_Export")
    list(trk.retrieve_events(client, "ClickEvent", datetime(2026, 1, 1), datetime(2026, 12, 31)))

    operations = {etree.QName(_body(e)).localname for e in recorded.sent}
    assert {
        "SystemStatusRequestMsg",
        "CreateRequest",
        "UpdateRequest",
        "RetrieveRequestMsg",
        "DeleteRequest",
        "PerformRequestMsg",
        "ExecuteRequestMsg",
        "ExtractRequestMsg",
    } <= operations
    for envelope in recorded.sent + recorded.received:
        body = _body(envelope)
        assert published_schema.validate(body), (
            etree.QName(body).localname,
            published_schema.error_log.last_error,
        )


def test_a_client_built_from_the_published_wsdl_uses_the_local_mce_unchanged(
    published: tuple[Path, Path], client: MceClient, key: str
) -> None:
    make_de(client, key)

    class OfflineTransport(zeep.Transport):
        def load(self, url: str) -> bytes:
            return published[1].read_bytes() if url == FAULT_URL else super().load(url)

    standard = zeep.Client(str(published[0]), transport=OfflineTransport())
    service = standard.create_service(BINDING, client.soap.endpoint)
    header = etree.Element(f"{{{FUELOAUTH_NS}}}fueloauth")
    header.text = client.soap.auth.token().value.reveal()  # type: ignore[attr-defined]
    status = service.GetSystemStatus(_soapheaders=[header])
    assert status.Results.Result[0].SystemStatus == "OK"
    found = service.Retrieve(
        RetrieveRequest={
            "ObjectType": "DataExtension",
            "Properties": ["CustomerKey", "Name"],
            "Filter": standard.get_type("ns0:SimpleFilterPart")(
                Property="CustomerKey", SimpleOperator="equals", Value=[key]
            ),
        },
        _soapheaders=[header],
    )
    assert found.OverallStatus == "OK"
    assert [r.CustomerKey for r in found.Results] == [key]
