"""The project's WSDL: a subset of the published MCE partner API, cut by scripts/make_wsdl_subset.py."""

from pathlib import Path

WSDL_PATH = Path(__file__).with_name("partner_api.wsdl")
PARTNER_NS = "http://exacttarget.com/wsdl/partnerAPI"
FAULT_NS = "urn:fault.partner.exacttarget.com"
FUELOAUTH_NS = "http://exacttarget.com"
BINDING = f"{{{PARTNER_NS}}}SoapBinding"
