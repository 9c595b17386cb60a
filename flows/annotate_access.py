"""Who may use the annotation page, and from where: every request is checked here before the
page does anything with it.

- The Host header must be a name the page is served under (a DNS-rebinding page on another
  name reads nothing).
- A request that changes anything is JSON from the page's own origin (`Origin` equal to the
  served host, `Sec-Fetch-Site: same-origin` when the browser sends it), so a cross-origin form
  or `text/plain` POST is refused before it is read.
- The annotator comes from the token in their link (`Authorization: Bearer`, hashed in
  Postgres) or, from a listed reverse-proxy address only, from the proxy's identity header.
  Nothing in a request body names anyone.
- A body is refused when it declares, or reaches, more than `max_body` bytes; it is never read
  whole first.
"""

import ipaddress
from collections.abc import Callable
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field
from starlette.requests import Request

from tasks.errors import ConfigError, Refused
from tasks.labels.annotators import normalise_annotator

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "::1")
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Access(BaseModel):
    model_config = ConfigDict(frozen=True)

    #: Host names the page answers to (compared without the port, case-insensitively).
    names: tuple[str, ...] = LOOPBACK_NAMES
    #: Reverse proxies whose identity header is believed (addresses or networks).
    trusted_proxies: tuple[Network, ...] = ()
    identity_header: str = "X-Forwarded-User"
    max_body: Annotated[int, Field(gt=0)] = 64 * 1024


def parse_proxies(values: list[str]) -> tuple[Network, ...]:
    try:
        return tuple(ipaddress.ip_network(value.strip(), strict=False) for value in values)
    except ValueError as exc:
        raise ConfigError(f"--trusted-proxy: {exc}") from None


def host_name(authority: str) -> str:
    """`Host`/`Origin` authority without the port: `[::1]:80` -> `::1`, `A.example:8` ->
    `a.example`."""
    authority = authority.strip().lower()
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority
    return authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority


def check_host(request: Request, access: Access) -> None:
    host = request.headers.get("host", "")
    if host_name(host) not in {name.lower() for name in access.names}:
        raise Refused(421, "this page is not served under that host name")


def check_same_origin(request: Request) -> None:
    """A state-changing request: JSON, sent by the page itself."""
    media = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if media != "application/json":
        raise Refused(415, "send the body as application/json")
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None and fetch_site != "same-origin":
        raise Refused(403, f"cross-site request refused (Sec-Fetch-Site: {fetch_site})")
    origin = request.headers.get("origin")
    if origin is None:
        raise Refused(403, "the Origin header is required")
    authority = origin.split("://", 1)[-1].rstrip("/").lower()
    if authority != request.headers.get("host", "").strip().lower():
        raise Refused(403, "cross-origin request refused")


def annotator(request: Request, access: Access, token_owner: Callable[[str], str | None]) -> str:
    """The person making the request: a listed proxy's header, else the link's token."""
    peer = request.client.host if request.client else ""
    if _from_trusted_proxy(peer, access.trusted_proxies):
        said = request.headers.get(access.identity_header)
        if not said:
            raise Refused(401, f"the proxy sent no {access.identity_header} header")
        try:  # header bytes arrive as Latin-1; proxies send names as UTF-8
            return normalise_annotator(said.encode("latin-1").decode("utf-8"))
        except UnicodeError:
            raise Refused(403, f"the {access.identity_header} header is not UTF-8") from None
        except ConfigError as exc:
            raise Refused(403, str(exc)) from None
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    who = token_owner(token.strip()) if scheme.lower() == "bearer" else None
    if who is None:
        raise Refused(401, "open the link you were given (`assay annotate invite`) to sign in")
    return who


def _from_trusted_proxy(peer: str, proxies: tuple[Network, ...]) -> bool:
    try:
        address = ipaddress.ip_address(peer)
    except ValueError:
        return False
    return any(address in network for network in proxies)


async def bounded_body(request: Request, cap: int) -> bytes:
    """The body, refused as soon as it declares or reaches more than `cap` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > cap):
        raise Refused(413, f"the body is over {cap:,} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > cap:
            raise Refused(413, f"the body is over {cap:,} bytes")
    return bytes(body)
