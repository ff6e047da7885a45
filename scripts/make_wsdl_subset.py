"""Derive the project's WSDL from the published MCE partner WSDL.

The package ships only the subset of the partner API it uses, so zeep loads it fast
and offline. The subset is cut from the published file, never written by hand: the
operations we call plus the object types we send or receive, and every type they
reference (bases, fields, enums), kept in the published order and form.

    python scripts/make_wsdl_subset.py ../shared/mce/etframework.wsdl \
        nto_etl/mce/wsdl/partner_api.wsdl

Re-run it when the list below changes; the contract test checks the result against
the published WSDL.
"""

from __future__ import annotations

import argparse
import copy
from collections import deque
from pathlib import Path

from lxml import etree

WSDL = "http://schemas.xmlsoap.org/wsdl/"
XSD = "http://www.w3.org/2001/XMLSchema"
TNS = "http://exacttarget.com/wsdl/partnerAPI"

OPERATIONS = [
    "Create",
    "Retrieve",
    "Update",
    "Delete",
    "Describe",
    "Execute",
    "Perform",
    "Extract",
    "GetSystemStatus",
]

# Concrete types that travel in polymorphic (xsi:type) slots.
OBJECT_TYPES = [
    "DataExtension",
    "DataExtensionField",
    "DataExtensionObject",
    "DataExtensionTemplate",
    "DataExtensionCreateResult",
    "DataExtensionUpdateResult",
    "DataExtensionDeleteResult",
    "ImportDefinition",
    "ImportResultsSummary",
    "QueryDefinition",
    "FilterDefinition",
    "FilterActivity",
    "DataExtractActivity",
    "FileTransferActivity",
    "SimpleFilterPart",
    "ComplexFilterPart",
    "SentEvent",
    "OpenEvent",
    "ClickEvent",
    "BounceEvent",
    "UnsubEvent",
    "Subscriber",
    "TriggeredSendDefinition",
    "TriggeredSend",
    "TriggeredSendCreateResult",
    "EmailSendDefinition",
    "SendDefinitionList",
    "Send",
]

FAULT_SCHEMA = f"""<schema xmlns="{XSD}" xmlns:xsd="{XSD}" xmlns:f="urn:fault.partner.exacttarget.com"
  targetNamespace="urn:fault.partner.exacttarget.com" elementFormDefault="qualified">
  <element name="apifault" type="f:APIFault"/>
  <complexType name="APIFault">
    <sequence>
      <element name="Code" type="xsd:int"/>
      <element name="Message" type="xsd:string"/>
      <element name="LogID" type="xsd:long" minOccurs="0"/>
      <element name="Params" minOccurs="0">
        <complexType>
          <sequence>
            <element name="Param" type="xsd:string" minOccurs="0" maxOccurs="unbounded"/>
          </sequence>
        </complexType>
      </element>
    </sequence>
  </complexType>
</schema>"""


def _references(node: etree._Element) -> set[str]:
    """Names in the target namespace that a schema node refers to."""
    names = set()
    for element in node.iter():
        for attr in ("type", "base", "ref", "itemType"):
            value = element.get(attr)
            if value and value.startswith("tns:"):
                names.add(value[4:])
    return names


def subset(published: Path) -> etree._ElementTree:
    tree = etree.parse(str(published))
    root = tree.getroot()
    schema = root.find(f"{{{WSDL}}}types/{{{XSD}}}schema")
    assert schema is not None
    top = [n for n in schema if isinstance(n.tag, str) and n.get("name")]
    by_name: dict[str, list[etree._Element]] = {}
    for node in top:
        by_name.setdefault(node.get("name"), []).append(node)

    port_type = root.find(f"{{{WSDL}}}portType")
    messages = {m.get("name"): m for m in root.findall(f"{{{WSDL}}}message")}
    wanted_messages = set()
    roots: set[str] = set(OBJECT_TYPES)
    for op in port_type.findall(f"{{{WSDL}}}operation"):
        if op.get("name") in OPERATIONS:
            for io in ("input", "output"):
                msg = op.find(f"{{{WSDL}}}{io}").get("message")[4:]
                wanted_messages.add(msg)
                for part in messages[msg]:
                    roots.add(part.get("element")[4:])

    keep: set[str] = set()
    queue = deque(roots)
    while queue:
        name = queue.popleft()
        if name in keep:
            continue
        if name not in by_name:
            raise SystemExit(f"{name} is not in the published schema")
        keep.add(name)
        for node in by_name[name]:
            queue.extend(_references(node) - keep)

    for node in top:
        if node.get("name") not in keep:
            schema.remove(node)
    for child in list(root):
        tag = etree.QName(child).localname
        if tag == "message" and child.get("name") not in wanted_messages:
            root.remove(child)
    for parent in (port_type, root.find(f"{{{WSDL}}}binding")):
        for op in list(parent.findall(f"{{{WSDL}}}operation")):
            if op.get("name") not in OPERATIONS:
                parent.remove(op)
    # The fault schema is inlined so that loading needs no network.
    for imp in schema.findall(f"{{{XSD}}}import"):
        imp.attrib.pop("schemaLocation", None)
    types = root.find(f"{{{WSDL}}}types")
    types.append(etree.fromstring(FAULT_SCHEMA))
    root.insert(
        0,
        etree.Comment(
            " Subset of the published MCE partner API WSDL (etframework.wsdl), cut by "
            "scripts/make_wsdl_subset.py. Do not edit by hand. "
        ),
    )
    address = root.find(f".//{{{WSDL}}}port/{{http://schemas.xmlsoap.org/wsdl/soap/}}address")
    address.set("location", "https://YOUR_SUBDOMAIN.soap.marketingcloudapis.com/Service.asmx")
    return copy.deepcopy(tree)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("published", type=Path)
    parser.add_argument("output", type=Path)
    args = parser.parse_args()
    tree = subset(args.published)
    etree.indent(tree, space="  ")
    tree.write(str(args.output), xml_declaration=True, encoding="utf-8", pretty_print=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
