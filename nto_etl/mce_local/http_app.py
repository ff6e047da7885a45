"""The HTTP side of the local MCE (aiohttp): the OAuth2 token endpoint, the WSDL, and SOAP."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

from aiohttp import web

from nto_etl.mce.wsdl import WSDL_PATH
from nto_etl.mce_local.service import MceService
from nto_etl.mce_local.tokens import OAuthError, TokenIssuer

MAX_BODY = 64 * 1024 * 1024


def build_app(service: MceService, issuer: TokenIssuer, base_url: Callable[[], str]) -> web.Application:
    async def token(request: web.Request) -> web.Response:
        try:
            if request.content_type == "application/x-www-form-urlencoded":
                payload = dict(await request.post())
            else:
                payload = await request.json()
            if not isinstance(payload, dict):
                raise ValueError
        except (ValueError, json.JSONDecodeError):
            return web.json_response(
                {"error": "invalid_request", "error_description": "The body must be JSON."}, status=400
            )
        try:
            return web.json_response(issuer.issue(payload, base_url()))
        except OAuthError as exc:
            return web.json_response(exc.body, status=exc.status)

    async def wsdl(request: web.Request) -> web.Response:
        text = WSDL_PATH.read_text(encoding="utf-8").replace(
            "https://YOUR_SUBDOMAIN.soap.marketingcloudapis.com/Service.asmx", base_url() + "/Service.asmx"
        )
        return web.Response(text=text, content_type="text/xml")

    async def soap(request: web.Request) -> web.Response:
        if "wsdl" in request.query:
            return await wsdl(request)
        payload = await request.read()
        action = request.headers.get("SOAPAction", "")
        loop = asyncio.get_running_loop()
        reply = await loop.run_in_executor(
            None, service.handle, action, payload, base_url() + "/Service.asmx"
        )
        return web.Response(body=reply.body, status=reply.status, content_type="text/xml", charset="utf-8")

    app = web.Application(client_max_size=MAX_BODY)
    app.router.add_post("/v2/token", token)
    app.router.add_get("/etframework.wsdl", wsdl)
    app.router.add_get("/Service.asmx", soap)
    app.router.add_post("/Service.asmx", soap)
    # MCE path matching is case-insensitive; clients differ in how they spell it.
    app.router.add_post("/service.asmx", soap)
    return app
