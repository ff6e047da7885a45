"""The SOAP service of the local MCE: authentication, dispatch by SOAPAction, and the operations.

Requests are parsed and answers rendered with the project's WSDL (see `codec`), so a
request the published schema rejects is rejected here too, and every answer is
schema-valid.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from lxml import etree

from nto_etl.mce.wsdl import FUELOAUTH_NS
from nto_etl.mce_local.activities import Activities, ActivityError
from nto_etl.mce_local.clock import mce_now
from nto_etl.mce_local.codec import OPERATIONS, SOAP_ENV, WSSE_NS, ClientFault, SoapCodec, fault
from nto_etl.mce_local.dataext import DataExtensions, DefinitionError, RowOutcome
from nto_etl.mce_local.faults import FaultPlan, InjectedFault
from nto_etl.mce_local.fieldtypes import FieldDef
from nto_etl.mce_local.filters import FilterError, compile_filter
from nto_etl.mce_local.imports import ImportDefinitionError, Imports
from nto_etl.mce_local.rows import Mode
from nto_etl.mce_local.store import Store
from nto_etl.mce_local.tokens import TokenIssuer
from nto_etl.mce_local.tracking import EVENT_TYPES, Tracking

log = logging.getLogger(__name__)

PAGE_SIZE = 2500
OBJECT_TYPES = (
    "DataExtension",
    "DataExtensionField",
    "ImportDefinition",
    "ImportResultsSummary",
    "QueryDefinition",
    "FilterDefinition",
    "FilterActivity",
    "EmailSendDefinition",
)
ACTIVITY_TYPES = ("QueryDefinition", "FilterDefinition", "FilterActivity", "EmailSendDefinition")
EVENT_COLUMNS = {
    "SendID": ("send_id", "Number"),
    "SubscriberKey": ("subscriber_key", "Text"),
    "EventDate": ("event_date", "Date"),
    "URL": ("url", "Text"),
    "BounceCategory": ("bounce_category", "Text"),
    "SMTPCode": ("smtp_code", "Text"),
    "SMTPReason": ("smtp_reason", "Text"),
    "BatchID": ("batch_id", "Number"),
    "EventType": (
        "CASE WHEN event_type <> 'Bounce' THEN event_type WHEN bounce_category = 'Hard bounce' THEN "
        "'HardBounce' WHEN bounce_category = 'Soft bounce' THEN 'SoftBounce' ELSE 'OtherBounce' END",
        "Text",
    ),
}
SUBSCRIBER_COLUMNS = {
    "SubscriberKey": ("subscriber_key", "Text"),
    "EmailAddress": ("email", "Text"),
    "Status": ("status", "Text"),
    "UnsubscribedDate": ("unsubscribed_at", "Date"),
    "CreatedDate": ("created_at", "Date"),
}
DATE_PROPERTIES = ("CreatedDate", "ModifiedDate", "StartDate", "EndDate")
XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=True)


@dataclass
class SoapReply:
    status: int
    body: bytes


class MceService:
    def __init__(
        self,
        store: Store,
        des: DataExtensions,
        imports: Imports,
        issuer: TokenIssuer,
        login_url: Callable[[], str],
        codec: SoapCodec,
        activities: Activities,
        tracking: Tracking,
    ) -> None:
        self.codec = codec
        self.activities = activities
        self.tracking = tracking
        self.types = self.codec.types
        self.store = store
        self.des = des
        self.imports = imports
        self.issuer = issuer
        self.login_url = login_url
        self.system_status = "OK"
        self._cursors: dict[str, tuple[str, int, list[Any]]] = {}  # RequestID -> (type, batch, rest)
        self._cursor_lock = threading.Lock()
        self.calls: dict[str, int] = {}
        self.faults = FaultPlan()
        self.auth_failures = 0
        self._fault_lock = threading.Lock()

    def inject(self, fault: InjectedFault) -> None:
        self.faults.add(fault)

    # -- entry point ----------------------------------------------------------------------------
    def handle(self, soap_action: str, payload: bytes, actor: str) -> SoapReply:
        action = soap_action.strip().strip('"').rsplit("/", 1)[-1]
        try:
            envelope = etree.fromstring(payload, XML_PARSER)
        except etree.XMLSyntaxError as exc:
            return SoapReply(500, fault("soap:Client", f"The request is not well-formed XML: {exc}"))
        if action not in OPERATIONS:
            return SoapReply(
                500,
                fault(
                    "soap:Client", f"Server did not recognize the value of HTTP Header SOAPAction: {action}."
                ),
            )
        injected = self.faults.draw(action)
        if injected is not None and injected.expire_tokens:
            self.issuer.expire_all()
        if not self._authenticated(envelope):
            self.auth_failures += 1
            return SoapReply(500, fault("q0:Security", "Login failed", actor=actor))
        body = envelope.find(f"{{{SOAP_ENV}}}Body")
        if body is None or len(body) == 0:
            return SoapReply(500, fault("soap:Client", "The SOAP Body is missing."))
        self.calls[action] = self.calls.get(action, 0) + 1
        if injected is not None and injected.delay_seconds:
            time.sleep(injected.delay_seconds)
        if injected is not None and injected.fail and not injected.after:
            return self._fault_reply(injected, actor)
        try:
            request = self.codec.parse(action, body[0])
            value = getattr(self, f"_op_{action}")(request)
            if injected is not None and injected.fail and injected.after:
                return self._fault_reply(injected, actor)
            return SoapReply(200, self.codec.response(action, value))
        except ClientFault as exc:
            return SoapReply(500, fault("soap:Client", str(exc)))
        except Exception as exc:
            log.exception("local MCE failed on %s", action)
            return SoapReply(500, fault("soap:Server", f"Unexpected error: {exc}", api_code=2, actor=actor))

    @staticmethod
    def _fault_reply(injected: InjectedFault, actor: str) -> SoapReply:
        if injected.reset:
            return SoapReply(0, b"")  # the HTTP layer drops the connection
        if injected.api_code is None:
            return SoapReply(injected.http_status, b"")
        return SoapReply(
            injected.http_status,
            fault("soap:Server", injected.message, api_code=injected.api_code, actor=actor),
        )

    def _authenticated(self, envelope: etree._Element) -> bool:
        header = envelope.find(f"{{{SOAP_ENV}}}Header")
        if header is None:
            return False
        token = header.find(f"{{{FUELOAUTH_NS}}}fueloauth")
        if token is not None:
            return self.issuer.valid((token.text or "").strip())
        user = header.find(f"{{{WSSE_NS}}}Security/{{{WSSE_NS}}}UsernameToken")
        if user is not None:
            name = user.findtext(f"{{{WSSE_NS}}}Username") or ""
            password = user.findtext(f"{{{WSSE_NS}}}Password") or ""
            return self.issuer.check_user(name, password)
        return False

    # -- results --------------------------------------------------------------------------------
    def _ok(self, type_name: str, ordinal: int, message: str, **extra: Any) -> Any:
        if type_name.endswith("CreateResult"):
            extra.setdefault("NewID", 0)
        return getattr(self.types, type_name)(
            StatusCode="OK", StatusMessage=message, OrdinalID=ordinal, **extra
        )

    def _error(self, type_name: str, ordinal: int, code: int, message: str, **extra: Any) -> Any:
        if type_name.endswith("CreateResult"):
            extra.setdefault("NewID", 0)
        return getattr(self.types, type_name)(
            StatusCode="Error", StatusMessage=message, OrdinalID=ordinal, ErrorCode=code, **extra
        )

    @staticmethod
    def _overall(results: list[Any]) -> str:
        failed = sum(1 for r in results if r.StatusCode != "OK")
        return "OK" if failed == 0 else ("Error" if failed == len(results) else "HasErrors")

    def _row_result(self, kind: str, ordinal: int, outcome: RowOutcome, verb: str) -> Any:
        type_name = f"DataExtension{kind}Result"
        if outcome.status in ("insert", "update", "deleted"):
            return self._ok(type_name, ordinal, f"{verb} DataExtensionObject")
        errors = (
            {
                "ValueError": [
                    self.types.DataExtensionError(Name=n, ErrorCode=c, ErrorMessage=m)
                    for n, c, m in outcome.field_errors
                ]
            }
            if outcome.field_errors
            else None
        )
        extra: dict[str, Any] = {"ErrorMessage": outcome.message}
        if kind != "Delete" and errors:
            extra["ValueErrors"] = errors
        return self._error(type_name, ordinal, outcome.code or 2, outcome.message, **extra)

    # -- operations -----------------------------------------------------------------------------
    def _op_GetSystemStatus(self, request: Any) -> dict[str, Any]:
        result = self.types.SystemStatusResult(
            StatusCode="OK", StatusMessage="System Status Retrieved", SystemStatus=self.system_status
        )
        return {
            "Results": {"Result": [result]},
            "OverallStatus": "OK",
            "OverallStatusMessage": "",
            "RequestID": str(uuid.uuid4()),
        }

    def _write(self, operation: str, request: Any) -> dict[str, Any]:
        objects = list(request.Objects or [])
        if not objects:
            raise ClientFault("Objects is required")
        results: list[Any] = [None] * len(objects)
        rows: dict[str, list[int]] = {}
        kind = {"Create": "Create", "Update": "Update", "Delete": "Delete"}[operation]
        for i, obj in enumerate(objects):
            type_name = type(obj).__name__
            if type_name == "DataExtensionObject":
                de = self._row_target(obj)
                if de is None:
                    results[i] = self._error(
                        f"DataExtension{kind}Result",
                        i,
                        310001,
                        "Unable to find the data extension: set CustomerKey or Name",
                    )
                else:
                    rows.setdefault(de["ObjectID"], []).append(i)
                continue
            results[i] = self._write_definition(kind, type_name, obj, i)
        for object_id, indexes in rows.items():
            de = self.store.find("DataExtension", "object_id = ?", [object_id])[0]
            for i, outcome in zip(
                indexes, self._write_rows(kind, request, de, [objects[i] for i in indexes]), strict=True
            ):
                verb = {"Create": "Created", "Update": "Updated", "Delete": "Deleted"}[kind]
                results[i] = self._row_result(kind, i, outcome, verb)
        for result, obj in zip(results, objects, strict=True):
            if getattr(result, "Object", None) is None:
                result.Object = obj  # MCE echoes the object each result is about
        return {"Results": results, "RequestID": str(uuid.uuid4()), "OverallStatus": self._overall(results)}

    def _row_target(self, obj: Any) -> dict[str, Any] | None:
        return self.des.get(obj.CustomerKey, obj.Name)

    def _write_rows(self, kind: str, request: Any, de: dict[str, Any], objs: list[Any]) -> list[RowOutcome]:
        def props(obj: Any, attr: str, item: str) -> dict[str, str | None]:
            container = getattr(obj, attr, None)
            return {p.Name: p.Value for p in (getattr(container, item, None) or [])} if container else {}

        if kind == "Delete":
            return self.des.delete_rows(
                de, [props(o, "Keys", "Key") or props(o, "Properties", "Property") for o in objs]
            )
        rows = [{**props(o, "Keys", "Key"), **props(o, "Properties", "Property")} for o in objs]
        upsert = any(
            str(s.SaveAction) == "UpdateAdd" and str(s.PropertyName) in ("*", "DataExtensionObject")
            for s in _save_options(request)
        )
        mode: Mode = "upsert" if upsert else ("insert" if kind == "Create" else "update")
        return self.des.write_rows(de, rows, mode)

    def _write_definition(self, kind: str, type_name: str, obj: Any, i: int) -> Any:
        result_type = f"{kind}Result"
        try:
            if type_name == "DataExtension":
                result_type = f"DataExtension{kind}Result"
                if kind == "Create":
                    body = self.des.create(obj)
                    return self._ok(
                        result_type,
                        i,
                        "Data Extension created.",
                        NewObjectID=body["ObjectID"],
                        Object=self.types.DataExtension(
                            CustomerKey=body["CustomerKey"], ObjectID=body["ObjectID"]
                        ),
                    )
                if kind == "Update":
                    self.des.update(obj)
                    return self._ok(result_type, i, "Data Extension updated.")
                self.des.delete(obj)
                return self._ok(result_type, i, "Data Extension deleted.")
            if type_name == "ImportDefinition" and kind in ("Create", "Update"):
                body = self.imports.create(obj) if kind == "Create" else self.imports.update(obj)
                extra = {"NewObjectID": body["ObjectID"]} if kind == "Create" else {}
                return self._ok(
                    result_type,
                    i,
                    f"ImportDefinition {kind.lower()}d.",
                    **extra,
                    Object=self.types.ImportDefinition(
                        CustomerKey=body["CustomerKey"], ObjectID=body["ObjectID"]
                    ),
                )
            if type_name in ACTIVITY_TYPES and kind in ("Create", "Update"):
                body = self.activities.save(type_name, obj, kind)
                extra = {"NewObjectID": body["ObjectID"]} if kind == "Create" else {}
                return self._ok(result_type, i, f"{type_name} {kind.lower()}d.", **extra)
        except (DefinitionError, ImportDefinitionError, ActivityError) as exc:
            return self._error(result_type, i, exc.code, str(exc))
        return self._error(result_type, i, 8, f"{kind} of {type_name} is not supported")

    def _op_Create(self, request: Any) -> dict[str, Any]:
        return self._write("Create", request)

    def _op_Update(self, request: Any) -> dict[str, Any]:
        return self._write("Update", request)

    def _op_Delete(self, request: Any) -> dict[str, Any]:
        return self._write("Delete", request)

    def _op_Retrieve(self, request: Any) -> dict[str, Any]:
        r = request.RetrieveRequest
        request_id = str(uuid.uuid4())
        if r.ContinueRequest:
            with self._cursor_lock:
                cursor = self._cursors.pop(r.ContinueRequest, None)
            if cursor is None:
                return {
                    "OverallStatus": "Error: ContinueRequest is not valid or has expired",
                    "RequestID": request_id,
                }
            object_type, batch, remaining = cursor
            return self._page(request_id, object_type, remaining, batch)
        object_type = str(r.ObjectType or "")
        properties = [str(p) for p in (r.Properties or [])]
        if not properties:
            return {"OverallStatus": "Error: The Request Properties list is empty", "RequestID": request_id}
        batch = PAGE_SIZE
        if r.Options is not None and r.Options.BatchSize:
            batch = max(1, min(PAGE_SIZE, int(r.Options.BatchSize)))
        try:
            results = self._retrieve(object_type, properties, r.Filter)
        except (FilterError, KeyError, LookupError) as exc:
            return {"OverallStatus": f"Error: {_message(exc)}", "RequestID": request_id}
        return self._page(request_id, object_type, results, batch)

    def _page(
        self, request_id: str, object_type: str, results: list[Any], batch: int = PAGE_SIZE
    ) -> dict[str, Any]:
        page, rest = results[:batch], results[batch:]
        status = "OK"
        if rest:
            status = "MoreDataAvailable"
            with self._cursor_lock:
                self._cursors[request_id] = (object_type, batch, rest)
        return {"OverallStatus": status, "RequestID": request_id, "Results": page}

    def _retrieve(self, object_type: str, properties: list[str], filter_part: Any) -> list[Any]:
        if object_type.startswith("DataExtensionObject[") and object_type.endswith("]"):
            key = object_type[len("DataExtensionObject[") : -1]
            de = self.des.get(key) or self.des.get(None, key)
            if de is None:
                raise LookupError(f"Data extension {key} does not exist")
            try:
                rows = self.des.select_rows(de, properties, filter_part)
            except KeyError as exc:
                raise LookupError(
                    f"The Request Property(s) {exc.args[0]} do not match with the fields of DataExtensionObject retrieve"
                ) from None
            make = self.types.DataExtensionObject
            prop = self.types.APIProperty
            return [
                make(
                    Properties={
                        "Property": [
                            prop(Name=n, Value=v)
                            for n, v in zip(properties, row, strict=True)
                            if v is not None
                        ]
                    }
                )
                for row in rows
            ]
        if object_type in EVENT_TYPES:
            return self._retrieve_table(
                object_type,
                properties,
                filter_part,
                EVENT_COLUMNS,
                "tracking_events",
                "event_type = $event_type AND visible_at <= $now",
                {"event_type": EVENT_TYPES[object_type], "now": mce_now()},
            )
        if object_type == "Subscriber":
            return self._retrieve_table(
                object_type, properties, filter_part, SUBSCRIBER_COLUMNS, "subscribers", "TRUE", {}
            )
        if object_type not in OBJECT_TYPES:
            raise LookupError(f"ObjectType {object_type} is not supported for Retrieve")
        zeep_type = self.codec.type_of(object_type)
        known = {name for name, _ in zeep_type.elements}
        bad = [p for p in properties if p.split(".")[0] not in known]
        if bad:
            raise LookupError(
                f"The Request Property(s) {', '.join(bad)} do not match with the fields of {object_type} retrieve"
            )
        where, params = "TRUE", dict[str, Any]()
        if filter_part is not None:
            where, params = compile_filter(filter_part, _json_resolver(known, object_type), allow_like=True)
        with self.store.connection() as con:
            rows = con.execute(
                f"SELECT body FROM objects WHERE object_type = $object_type AND ({where}) ORDER BY seq",
                {**params, "object_type": object_type},
            ).fetchall()
        return [self._render_object(zeep_type, json.loads(b), properties) for (b,) in rows]

    def _retrieve_table(
        self,
        object_type: str,
        properties: list[str],
        filter_part: Any,
        columns: dict[str, tuple[str, str]],
        table: str,
        where: str,
        params: dict[str, Any],
    ) -> list[Any]:
        bad = [p for p in properties if p not in columns]
        if bad:
            raise LookupError(
                f"The Request Property(s) {', '.join(bad)} do not match with the fields of {object_type} retrieve"
            )
        if filter_part is not None:

            def resolve(name: str) -> tuple[str, FieldDef]:
                if name not in columns:
                    raise FilterError(f"the filter property {name} is not a property of {object_type}")
                column, kind = columns[name]
                return column, FieldDef(name=name, field_type=kind)

            extra, extra_params = compile_filter(filter_part, resolve)
            where = f"({where}) AND ({extra})"
            params = {**params, **extra_params}
        select = ", ".join(columns[p][0] for p in properties)
        with self.store.connection() as con:
            rows = con.execute(
                f"SELECT {select} FROM {table} WHERE {where} ORDER BY rowid", params
            ).fetchall()
        zeep_type = self.codec.type_of(object_type)
        return [
            zeep_type(**{p: v for p, v in zip(properties, row, strict=True) if v is not None}) for row in rows
        ]

    def _render_object(self, zeep_type: Any, body: dict[str, Any], properties: list[str]) -> Any:
        values: dict[str, Any] = {}
        nested: dict[str, dict[str, Any]] = {}
        for p in properties:
            if p not in body or body[p] is None:
                continue
            value = body[p]
            if p.split(".")[-1] in DATE_PROPERTIES and isinstance(value, str):
                value = datetime.fromisoformat(value)
            if "." in p:
                head, tail = p.split(".", 1)
                nested.setdefault(head, {})[tail] = value
            else:
                values[p] = value
        elements = dict(zeep_type.elements)
        for head, sub in nested.items():
            element_type = elements[head].type
            if element_type.name == "APIObject":
                element_type = self.codec.type_of("DataExtension")
            values[head] = element_type(**sub)
        return zeep_type(**values)

    def _op_Perform(self, request: Any) -> dict[str, Any]:
        action = str(request.Action or "")
        definitions = list(request.Definitions.Definition) if request.Definitions else []
        results = [self._perform_one(i, type(d).__name__, action, d) for i, d in enumerate(definitions)]
        for result, definition in zip(results, definitions, strict=True):
            if result.Object is None:
                result.Object = definition  # MCE echoes the definition each result is about
        return {
            "Results": {"Result": results},
            "OverallStatus": self._overall(results) if results else "Error",
            "OverallStatusMessage": "",
            "RequestID": str(uuid.uuid4()),
        }

    def _perform_one(self, i: int, type_name: str, action: str, d: Any) -> Any:
        if action != "start":
            return self._error("PerformResult", i, 8, f"Perform {action} is not supported on {type_name}")
        key = d.CustomerKey or ""
        try:
            if type_name == "ImportDefinition":
                task_id, definition = self.imports.start(key)
                task = self.types.TaskResult(
                    StatusCode="OK",
                    StatusMessage="OK",
                    ID=str(task_id),
                    InteractionObjectID=definition["ObjectID"],
                )
                return self._ok(
                    "PerformResult",
                    i,
                    f"ImportDefinition performed AsyncID:{task_id}",
                    Object=self.types.ImportDefinition(CustomerKey=definition["CustomerKey"]),
                    Task=task,
                )
            if type_name == "QueryDefinition":
                _, message = self.activities.run_query(key)
            elif type_name == "FilterActivity":
                _, message = self.activities.run_filter(key)
            elif type_name == "EmailSendDefinition":
                send_id, recipients = self.activities.start_send(key)
                task = self.types.TaskResult(
                    StatusCode="OK", StatusMessage=f"{recipients} recipients", ID=str(send_id)
                )
                return self._ok(
                    "PerformResult", i, f"EmailSendDefinition performed JobID:{send_id}", Task=task
                )
            elif type_name == "FileTransferActivity":
                moved = self.activities.transfer(key)
                message = f"{len(moved)} files moved to Export: {', '.join(moved)}"
            else:
                return self._error("PerformResult", i, 8, f"Perform start is not supported on {type_name}")
        except ImportDefinitionError as exc:
            return self._error("PerformResult", i, exc.code, str(exc))
        except ActivityError as exc:
            task = self.types.TaskResult(StatusCode="Error", StatusMessage=str(exc), ErrorCode=exc.code)
            return self._error("PerformResult", i, exc.code, str(exc), Task=task)
        task = self.types.TaskResult(
            StatusCode="OK", StatusMessage=message, ID=str(self.store.next_task_id())
        )
        return self._ok("PerformResult", i, f"{type_name} performed: {message}", Task=task)

    def _op_Execute(self, request: Any) -> dict[str, Any]:
        results = []
        for r in request.Requests or []:
            if r.Name == "GetUserToken":
                token = self.issuer.user_token()
                prop = self.types.APIProperty
                results.append(
                    self.types.ExecuteResponse(
                        StatusCode="OK",
                        StatusMessage="User token issued",
                        Results=[
                            prop(Name="UserToken", Value=token),
                            prop(Name="LoginURL", Value=self.login_url()),
                        ],
                    )
                )
            else:
                results.append(
                    self.types.ExecuteResponse(
                        StatusCode="Error", StatusMessage=f"Execute {r.Name} is not supported", ErrorCode=8
                    )
                )
        status = "OK" if results and all(r.StatusCode == "OK" for r in results) else "Error"
        return {"OverallStatus": status, "RequestID": str(uuid.uuid4()), "Results": results}

    def _op_Describe(self, request: Any) -> dict[str, Any]:
        definitions = []
        for r in request.DescribeRequests.ObjectDefinitionRequest if request.DescribeRequests else []:
            try:
                zeep_type = self.codec.type_of(str(r.ObjectType))
            except LookupError:
                continue
            props = [
                self.types.PropertyDefinition(Name=name, IsRetrievable=True) for name, _ in zeep_type.elements
            ]
            definitions.append(
                self.types.ObjectDefinition(
                    ObjectType=r.ObjectType, Name=r.ObjectType, IsRetrievable=True, Properties=props
                )
            )
        return {"ObjectDefinition": definitions, "RequestID": str(uuid.uuid4())}

    def _op_Extract(self, request: Any) -> dict[str, Any]:
        results = []
        for r in request.Requests or []:
            params = {p.Name: p.Value for p in (r.Parameters.Parameter if r.Parameters else [])}
            try:
                name = self.activities.extract(str(r.ID), params)
                results.append(
                    self.types.ExtractResult(StatusCode="OK", StatusMessage=f"Extract written: {name}")
                )
            except ActivityError as exc:
                results.append(
                    self.types.ExtractResult(StatusCode="Error", StatusMessage=str(exc), ErrorCode=exc.code)
                )
        status = "OK" if results and all(r.StatusCode == "OK" for r in results) else "Error"
        return {
            "OverallStatus": status,
            "RequestID": str(uuid.uuid4()),
            "Results": {"ExtractResult": results},
        }


def _save_options(request: Any) -> list[Any]:
    options = getattr(request, "Options", None)
    saves = getattr(options, "SaveOptions", None) if options is not None else None
    return list(saves.SaveOption) if saves is not None and saves.SaveOption else []


def _json_resolver(known: set[str], object_type: str) -> Callable[[str], tuple[str, None]]:
    def resolve(name: str) -> tuple[str, None]:
        if name.split(".")[0] not in known:
            raise FilterError(f"the filter property {name} is not a property of {object_type}")
        path = '$."' + name.replace('"', "") + '"'
        return "json_extract_string(body, '" + path.replace("'", "''") + "')", None

    return resolve


def _message(exc: Exception) -> str:
    return str(exc.args[0]) if exc.args else str(exc)
