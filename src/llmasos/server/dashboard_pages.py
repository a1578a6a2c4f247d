"""The web dashboard: GET / (processes) and GET /dashboard/{page}, one page per concern, and
their files under /dashboard/static. The pages hold no data: their scripts read the API with
the key the user gives (kept in the tab's sessionStorage), so every key, role and isolation
rule of the API holds, and follow the server live through GET /v1/watch. Nothing is built or
fetched at run time: the scripts are plain ES modules over vendored htm/Preact and uPlot
(dashboard/vendor/README.md)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, Response
from fastapi.staticfiles import StaticFiles

from llmasos.errors import UnknownObjectError

FILES = Path(__file__).parent / "dashboard"
PAGES = {
    "processes": "Processes and agents",
    "memory": "Memory and models",
    "agents": "Agent traces",
    "jobs": "Training jobs",
    "chat": "Chat and playground",
}
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
        "frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}

router = APIRouter(include_in_schema=False)


@router.get("/", response_class=HTMLResponse)
async def home() -> HTMLResponse:
    return page_response("processes")


@router.get("/favicon.ico")
async def favicon() -> Response:
    return Response((FILES / "favicon.svg").read_bytes(), media_type="image/svg+xml")


@router.get("/dashboard/{page}", response_class=HTMLResponse)
async def dashboard_page(page: str) -> HTMLResponse:
    return page_response(page)


def page_response(page: str) -> HTMLResponse:
    if page not in PAGES:
        raise UnknownObjectError("page", page)
    html = (FILES / "page.html").read_text()
    html = html.replace("{{title}}", PAGES[page]).replace("{{page}}", page)
    return HTMLResponse(html, headers=HEADERS)


def mount_dashboard(app: FastAPI) -> None:
    app.include_router(router)
    app.mount("/dashboard/static", StaticFiles(directory=FILES), name="dashboard")
