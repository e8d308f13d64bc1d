"""The dashboard's web app (Starlette): pages rendered from templates that escape every value,
a few JSON endpoints for what changes in place (live counts, the threshold what-if, the YAML
editor's compile), and the bundled assets.

Read-only: nothing here writes to a run. Requests are answered only for the hosts the server
was bound to (a page elsewhere cannot reach it through DNS rebinding); the one POST (compile)
needs a JSON body from the dashboard's own origin; every response forbids inline scripts and
framing.
"""

from __future__ import annotations

import math
import urllib.parse
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jinja2
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from prepflow.ui import pages
from prepflow.ui import pipeline as pipeline_view
from prepflow.ui.present import FILTERS
from prepflow.ui.runs import RunNotFound, RunsDir

HERE = Path(__file__).resolve().parent
LOOPBACK = ("127.0.0.1", "localhost", "::1", "[::1]")
MAX_YAML_BYTES = 1 << 20
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
    "cache-control": "no-store",
}

templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(FILTERS)
templates.globals["q"] = lambda value: urllib.parse.quote(str(value), safe="")


def create_app(runs_dir: str | Path, hosts: tuple[str, ...] = LOOPBACK) -> Starlette:
    """The dashboard over the runs under ``runs_dir``, answering for the host names ``hosts``
    (``*``: any)."""
    runs = RunsDir(runs_dir)

    def page(template: str, build: Callable[..., dict[str, Any]]) -> Callable[[Request], Any]:
        def endpoint(request: Request) -> Response:
            context = build(request)
            return HTMLResponse(templates.get_template(template).render(**context))

        return endpoint

    def run_name(request: Request) -> str:
        return request.path_params["run"]

    def int_param(request: Request, key: str) -> int:
        try:
            return int(request.path_params[key])
        except ValueError:
            raise HTTPException(404, f"{key} is not a number") from None

    def runs_page(request: Request) -> dict[str, Any]:
        return {"runs": pages.runs_list(runs), "root": str(runs.root)}

    def run_page(request: Request) -> dict[str, Any]:
        return pages.run_page(runs, run_name(request))

    def step_page(request: Request) -> dict[str, Any]:
        return pages.step_page(runs, run_name(request), int_param(request, "index"))

    def failures(request: Request) -> dict[str, Any]:
        return pages.failures_page(runs, run_name(request))

    def rows(request: Request) -> dict[str, Any]:
        q = request.query_params.get("q", "")
        where = request.query_params.get("in", "input")
        return pages.search_page(runs, run_name(request), q, where)

    def row(request: Request) -> dict[str, Any]:
        return pages.row_page(runs, run_name(request), int_param(request, "id"))

    def pipeline(request: Request) -> dict[str, Any]:
        name = run_name(request)
        return {"run": pages.run_summary(runs, name), **pipeline_view.compiled(runs.path(name))}

    def compare(request: Request) -> dict[str, Any]:
        names = runs.names()
        a = request.query_params.get("a") or (names[0] if names else "")
        b = request.query_params.get("b") or (names[1] if len(names) > 1 else a)
        chosen = pages.compare_page(runs, a, b) if a and b else None
        return {"names": names, "chosen": chosen, "a_name": a, "b_name": b}

    def api_runs(request: Request) -> Response:
        return JSONResponse({"runs": pages.runs_live(runs)})

    def api_run(request: Request) -> Response:
        return JSONResponse(pages.live_values(runs, run_name(request)))

    def api_whatif(request: Request) -> Response:
        try:
            t = float(request.query_params["t"])
        except (KeyError, ValueError):
            raise pages.BadRequest("t: a number is needed") from None
        if not math.isfinite(t):
            raise pages.BadRequest("t: a finite number is needed")
        key = request.query_params.get("rule", "")
        result = pages.what_if(runs, run_name(request), int_param(request, "index"), key, t)
        return JSONResponse(result)

    async def api_compile(request: Request) -> Response:
        _same_origin_json(request)
        body = await request.body()
        if len(body) > MAX_YAML_BYTES:
            raise pages.BadRequest("the YAML is too large")
        try:
            text = (await request.json())["yaml"]
        except (ValueError, KeyError, TypeError):
            raise pages.BadRequest('send {"yaml": "..."}') from None
        if not isinstance(text, str):
            raise pages.BadRequest("yaml must be a string")
        run_dir = runs.path(run_name(request))
        return JSONResponse(await run_in_threadpool(pipeline_view.check, text, run_dir))

    routes = [
        Route("/", page("runs.html", runs_page)),
        Route("/compare", page("compare.html", compare)),
        Route("/runs/{run}", page("run.html", run_page)),
        Route("/runs/{run}/steps/{index}", page("step.html", step_page)),
        Route("/runs/{run}/failures", page("failures.html", failures)),
        Route("/runs/{run}/rows", page("rows.html", rows)),
        Route("/runs/{run}/rows/{id}", page("row.html", row)),
        Route("/runs/{run}/pipeline", page("pipeline.html", pipeline)),
        Route("/api/runs", api_runs),
        Route("/api/runs/{run}", api_run),
        Route("/api/runs/{run}/steps/{index}/whatif", api_whatif),
        Route("/api/runs/{run}/compile", api_compile, methods=["POST"]),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[
            Middleware(TrustedHostMiddleware, allowed_hosts=list(hosts)),
            Middleware(SecurityHeaders),
        ],
        exception_handlers={
            RunNotFound: _not_found,
            pages.BadRequest: _bad_request,
            HTTPException: _http_error,
        },
    )


def _same_origin_json(request: Request) -> None:
    """A POST from the dashboard itself: a JSON body (a form on another site cannot send one
    without asking first, and is not answered) and, when the browser names it, this origin."""
    if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
        raise HTTPException(415, "send application/json")
    origin = request.headers.get("origin")
    if origin is not None and urllib.parse.urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, "cross-origin request refused")


def _error(request: Request, status: int, message: str) -> Response:
    if request.url.path.startswith("/api/"):
        return JSONResponse({"error": message}, status_code=status)
    html = templates.get_template("error.html").render(status=status, message=message)
    return HTMLResponse(html, status_code=status)


async def _not_found(request: Request, exc: Exception) -> Response:
    return _error(request, 404, f"no run named {str(exc)!r} here")


async def _bad_request(request: Request, exc: Exception) -> Response:
    return _error(request, 400, str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return _error(request, exc.status_code, str(exc.detail))


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every response."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, with_headers)
