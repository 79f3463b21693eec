"""Mutating requests only from the dashboard's own pages (or from clients that are not
browsers): a page on another site can make a browser send a body-less POST (cancel a run, queue
an experiment) without any CORS preflight, so such a request is refused when the browser says
where it comes from and that is not here."""

from urllib.parse import urlsplit

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _headers(scope: Scope) -> dict[str, str]:
    return {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}


def foreign_origin(method: str, headers: dict[str, str]) -> str | None:
    """Why a request must be refused, or None. Browsers send Origin on every cross-origin
    request and on same-origin POST, PATCH and DELETE; curl and scripts send none."""
    if method in SAFE_METHODS:
        return None
    if headers.get("sec-fetch-site") in ("cross-site", "same-site"):
        return f"a page on another site ({headers.get('origin', 'unknown origin')})"
    origin = headers.get("origin")
    if origin is None:
        return None
    hosts = {headers.get("host", "")} | {
        h.strip() for h in headers.get("x-forwarded-host", "").split(",") if h.strip()
    }
    try:
        netloc = urlsplit(origin).netloc
    except ValueError:
        netloc = ""
    if origin == "null" or netloc not in hosts:
        return f"a page on another origin ({origin})"
    return None


class SameOriginMiddleware:
    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            why = foreign_origin(scope["method"], _headers(scope))
            if why is not None:
                response = JSONResponse(
                    status_code=403,
                    content={
                        "detail": f"refused: this request came from {why}; changes are "
                        "accepted only from distillscope's own pages or from clients that "
                        "are not browsers"
                    },
                )
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
