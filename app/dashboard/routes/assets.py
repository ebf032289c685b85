"""The dashboard's stylesheet, script and plotly.js, served by Rua itself: pages make no
request to anyone else and work offline."""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter
from fastapi.responses import FileResponse

from app.dashboard.templating import FRONTEND
from app.problems import Problem

STATIC = FRONTEND / "static"
# plotly.js ships inside the plotly package, at the version the figures are built with
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
ASSET_CACHE = "public, max-age=3600"  # ETag and Last-Modified cover an upgrade within the hour
MEDIA = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml", ".ico": "image/x-icon"}

router = APIRouter(prefix="/static", include_in_schema=False)


@router.get("/{name}")
def static_asset(name: str) -> FileResponse:
    path = PLOTLY_JS if name == "plotly.min.js" else STATIC / name
    # only plain names of files that are there: no path can climb out of the folder
    if "/" in name or name.startswith(".") or path.suffix not in MEDIA or not path.is_file():
        raise Problem(404, "not-found", "Not found", f"there is no asset named {name!r}")
    return FileResponse(path, media_type=MEDIA[path.suffix],
                        headers={"Cache-Control": ASSET_CACHE, "X-Content-Type-Options": "nosniff"})
