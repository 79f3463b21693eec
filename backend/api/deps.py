"""Typed dependencies shared by the routes."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, HTTPException, status
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


def require_token(settings: SettingsDep, authorization: str | None = Header(default=None)):
    """When DISTILLSCOPE_API_TOKEN is set, mutating endpoints need `Authorization: Bearer`."""
    if settings.api_token and authorization != f"Bearer {settings.api_token}":
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, "missing or wrong bearer token")


TokenDep = Depends(require_token)
