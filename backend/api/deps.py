"""Typed dependencies shared by the routes."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, Path, Query, status
from sqlalchemy.orm import Session

from backend.db.session import new_session
from backend.settings import Settings, get_settings


def get_db() -> Iterator[Session]:
    session = new_session()
    try:
        yield session
    finally:
        session.close()


SessionDep = Annotated[Session, Depends(get_db)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


async def require_token(authorization: str | None = Header(default=None)):
    """When DISTILLSCOPE_API_TOKEN is set, mutating endpoints need `Authorization: Bearer`.
    Async and dependency-free, so the check takes no threadpool thread (a refused or busy
    request costs the server nothing that /api/health needs)."""
    settings = get_settings()
    if settings.api_token and authorization != f"Bearer {settings.api_token}":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token")


TokenDep = Depends(require_token)


# The largest id or step every supported database holds: PostgreSQL's `integer` (SQLite's is
# 2**63 - 1). Beyond it a query fails in the database, so such a number is a 422 up front.
MAX_DB_INT = 2**31 - 1
RunId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A run's id.")]
SweepId = Annotated[int, Path(ge=1, le=MAX_DB_INT, description="A sweep's id.")]


def step_query(default=None, *, ge: int = 0, description: str | None = None):
    """A step number in a query string, bounded by what the databases hold."""
    return Query(default, ge=ge, le=MAX_DB_INT, description=description)
