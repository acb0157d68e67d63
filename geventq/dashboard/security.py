"""Basic auth, CSRF, and the headers that keep a page's content from running as script.

- Basic auth (``create_app(auth="user:password")``): both parts compared in
  constant time; a request without valid credentials gets 401.
- CSRF: a form POST carries a token equal to a random cookie the dashboard set
  (``SameSite=Strict``, ``HttpOnly``): another site can neither read it nor make
  the browser send it. A JSON POST must say ``Content-Type: application/json``,
  which a cross-site form cannot send and a cross-site script cannot without a
  CORS preflight the dashboard never answers. Either way, a request whose
  ``Origin`` is another host, or that the browser marks cross-site
  (``Sec-Fetch-Site``), is refused.
- Every response forbids inline script, framing and sniffing (CSP and friends),
  so even text that slipped past escaping could not run.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from urllib.parse import urlsplit

from flask import Response, g, request

CSRF_COOKIE = "geventq_dashboard_csrf"
CSRF_FIELD = "csrf_token"
AUTH_ENV = "GEVENTQ_DASHBOARD_AUTH"
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; "
                               "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                               "base-uri 'none'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    # not no-referrer: with it, browsers send "Origin: null" on our own form POSTs
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def parse_credentials(value: str | tuple[str, str] | None) -> tuple[str, str] | None:
    """``"USER:PASSWORD"`` (or a pair) as a pair; None or "" means no auth.

    Raises ValueError, without echoing the value, when a part is missing.
    """
    if value is None or value == "":
        return None
    if isinstance(value, tuple):
        user, password = value
    elif isinstance(value, str) and ":" in value:
        user, password = value.split(":", 1)
    else:
        raise ValueError("dashboard auth must be USER:PASSWORD")
    if not user or not password:
        raise ValueError("dashboard auth must be USER:PASSWORD, both non-empty")
    return user, password


def basic_auth_guard(credentials: tuple[str, str]) -> Callable[[], Response | None]:
    """A ``before_request`` hook answering 401 unless the request carries ``credentials``."""
    user, password = (part.encode() for part in credentials)

    def guard() -> Response | None:
        given = request.authorization
        if given is not None and given.type == "basic":
            # both compared, always: the time taken says nothing about which part was wrong
            user_ok = hmac.compare_digest((given.username or "").encode(), user)
            password_ok = hmac.compare_digest((given.password or "").encode(), password)
            if user_ok & password_ok:
                return None
        return Response("401 Unauthorized: this geventq dashboard needs a user and password\n",
                        401, {"WWW-Authenticate": 'Basic realm="geventq dashboard", charset="UTF-8"',
                              "Content-Type": "text/plain; charset=utf-8"})

    return guard


def csrf_token() -> str:
    """This browser's token (made, and set as a cookie with the response, when new)."""
    token = getattr(g, "geventq_csrf", None)
    if token is None:
        token = request.cookies.get(CSRF_COOKIE, "")
        if len(token) != 43:  # token_urlsafe(32); anything else was not set by us
            token = secrets.token_urlsafe(32)
            g.geventq_csrf_new = True
        g.geventq_csrf = token
    return token


def set_csrf_cookie(response: Response, path: str) -> None:
    if getattr(g, "geventq_csrf_new", False):
        response.set_cookie(CSRF_COOKIE, g.geventq_csrf, path=path, httponly=True,
                            samesite="Strict", secure=request.is_secure)


def refusal_of_post(api: bool) -> str | None:
    """Why this state-changing request must be refused (None: it may go on)."""
    site = request.headers.get("Sec-Fetch-Site")
    if site is not None and site not in ("same-origin", "none"):
        return f"refused a {site} request"
    origin = request.headers.get("Origin")
    if origin is not None and urlsplit(origin).netloc != request.host:
        return "refused a request from another origin"
    if api:
        if request.mimetype != "application/json":
            return "the API takes a JSON body (Content-Type: application/json)"
        return None
    sent, expected = request.form.get(CSRF_FIELD, ""), request.cookies.get(CSRF_COOKIE, "")
    if not sent or not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        return "missing or wrong CSRF token: reload the page and try again"
    return None


def add_security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response
