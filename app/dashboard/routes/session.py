"""Signing in and out of the dashboard.

The login form is protected against cross-site posting by a double-submit token (a cookie and
a hidden field that must match), since there is no session yet to hold one; after sign-in,
forms carry the session's own token. Failures are throttled per address and username.
"""

from __future__ import annotations

import hmac
import secrets
from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from app.dashboard.templating import render
from app.dashboard_sessions import LoginThrottle, end_session, start_session
from app.dashboard_users import MAX_PASSWORD_LENGTH, MAX_USERNAME_LENGTH, verify_login
from app.deps import SESSION_COOKIE, CsrfCheckedDep, EngineDep, SettingsDep, signed_in_user
from app.settings import Settings

LOGIN_CSRF_COOKIE = "rua_login_csrf"
router = APIRouter(include_in_schema=False)


def safe_next(target: str | None) -> str:
    """Only a path on this site: an open redirect would make the login page a phishing aid."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _secure(request: Request, settings: Settings) -> bool:
    return settings.secure_cookies or request.url.scheme == "https"


def _throttle(request: Request) -> LoginThrottle:
    throttle: LoginThrottle | None = getattr(request.app.state, "login_throttle", None)
    if throttle is None:
        throttle = request.app.state.login_throttle = LoginThrottle()
    return throttle


def _login_page(request: Request, settings: Settings, next_url: str, username: str = "",
                error: str | None = None, status_code: int = 200,
                headers: dict[str, str] | None = None) -> Response:
    token = request.cookies.get(LOGIN_CSRF_COOKIE) or secrets.token_urlsafe(32)
    response = render(request, "login.html", {"next_url": next_url, "username": username, "error": error,
                                              "login_csrf": token, "title": "Sign in"},
                      status_code=status_code, headers=headers)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", path="/login",
                        secure=_secure(request, settings), max_age=3600)
    return response


@router.get("/login")
def login_form(request: Request, engine: EngineDep, settings: SettingsDep,
               next: str | None = None) -> Response:
    next_url = safe_next(next)
    if signed_in_user(request, engine) is not None:
        return RedirectResponse(next_url, status_code=303)
    return _login_page(request, settings, next_url)


@router.post("/login")
def login(request: Request, engine: EngineDep, settings: SettingsDep,
          username: Annotated[str, Form(max_length=MAX_USERNAME_LENGTH * 4)] = "",
          password: Annotated[str, Form(max_length=MAX_PASSWORD_LENGTH * 4)] = "",
          csrf_token: Annotated[str, Form(max_length=256)] = "",
          next: Annotated[str, Form(max_length=4096)] = "/") -> Response:
    next_url = safe_next(next)
    cookie = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie or not hmac.compare_digest(cookie.encode(), csrf_token.encode()):
        return _login_page(request, settings, next_url, username, status_code=403,
                           error="The sign-in form had expired. Please sign in again.")
    address = request.client.host if request.client else "unknown"
    throttle = _throttle(request)
    wait = throttle.retry_after(address, username)
    if wait:
        minutes = max(1, round(wait / 60))
        return _login_page(request, settings, next_url, username, status_code=429,
                           headers={"Retry-After": str(wait)},
                           error=f"Too many failed sign-ins. Try again in {minutes} minute"
                                 f"{'s' if minutes != 1 else ''}.")
    user = verify_login(engine, username.strip(), password)
    if user is None or user.id is None:
        throttle.failed(address, username.strip())
        return _login_page(request, settings, next_url, username, status_code=401,
                           error="Wrong username or password.")
    throttle.succeeded(address, username.strip())
    lifetime = timedelta(hours=settings.session_hours)
    token = start_session(engine, user.id, lifetime)
    response = RedirectResponse(next_url, status_code=303)
    response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="lax", path="/",
                        secure=_secure(request, settings), max_age=int(lifetime.total_seconds()))
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(engine: EngineDep, user: CsrfCheckedDep) -> Response:
    end_session(engine, user.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
