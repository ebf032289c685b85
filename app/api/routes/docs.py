"""Interactive API docs (Swagger UI, ReDoc) and the OpenAPI schema, served from local files.

FastAPI's stock docs pages load their scripts from a CDN, which fails offline and tells a
third party who reads the docs; these pages load only from this server, using the copies
bundled with fastapi-offline. Only `/healthz`, `/readyz` and `/metrics` answer without a
token, so these need a `read` token too, unless `RUA_PUBLIC_DOCS=true`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import fastapi_offline
from fastapi import APIRouter, Depends, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse
from fastapi.security import HTTPAuthorizationCredentials

from app.api_tokens import Scope
from app.deps import EngineDep, SettingsDep, bearer, require
from app.problems import Problem

ASSETS = Path(fastapi_offline.__file__).parent / "static"
ASSET_NAMES = frozenset({"swagger-ui-bundle.js", "swagger-ui.css", "redoc.standalone.js", "favicon.png"})
# the files change only when fastapi-offline is upgraded; ETag/Last-Modified cover that case
ASSET_CACHE = "public, max-age=86400"


def docs_access(request: Request, settings: SettingsDep, engine: EngineDep,
                credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]) -> None:
    if not settings.public_docs:
        require(Scope.READ)(request, engine, credentials)


router = APIRouter(dependencies=[Depends(docs_access)], include_in_schema=False)


def _base(request: Request) -> str:
    """The path prefix the app is mounted under behind a proxy (`--root-path`), if any."""
    return str(request.scope.get("root_path", "")).rstrip("/")


@router.get("/openapi.json")
def openapi_schema(request: Request) -> JSONResponse:
    schema: dict[str, Any] = request.app.openapi()
    return JSONResponse(schema)


@router.get("/docs")
def swagger_ui(request: Request) -> HTMLResponse:
    base = _base(request)
    return get_swagger_ui_html(
        openapi_url=f"{base}/openapi.json", title=f"{request.app.title} API",
        swagger_js_url=f"{base}/docs/assets/swagger-ui-bundle.js",
        swagger_css_url=f"{base}/docs/assets/swagger-ui.css",
        swagger_favicon_url=f"{base}/docs/assets/favicon.png",
        # keep the token across reloads; no validator badge (it would call validator.swagger.io)
        swagger_ui_parameters={"persistAuthorization": True, "validatorUrl": None})


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    base = _base(request)
    return get_redoc_html(openapi_url=f"{base}/openapi.json", title=f"{request.app.title} API",
                          redoc_js_url=f"{base}/docs/assets/redoc.standalone.js",
                          redoc_favicon_url=f"{base}/docs/assets/favicon.png", with_google_fonts=False)


@router.get("/docs/assets/{name}")
def docs_asset(name: str) -> FileResponse:
    if name not in ASSET_NAMES:
        raise Problem(404, "not-found", "Not Found", f"no docs asset named {name!r}")
    return FileResponse(ASSETS / name, headers={"Cache-Control": ASSET_CACHE})
