"""The annotation page knows who is answering (issue 24, item 5), over real HTTP to the
installed `assay annotate serve`.

Before, the annotator was a name in the JSON body: anyone could take another person's claim and
answer as them, a cross-origin `text/plain` POST labelled items, a `Host: evil.example` request
was served, throwaway names hoarded the queue, `alice` and `Alice` were two people, a 300 MB body
was read whole, and `--host 0.0.0.0` served silently. Each attack is tried here and refused."""

import json
import socket
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from tests.annotation import free_port, invite, make_queue, serving, token_of
from tests.cli import assay
from tests.fakes.llm import FakeLLM

pytestmark = pytest.mark.slow


def page_headers(url: str, token: str | None = None) -> dict[str, str]:
    """What the page itself sends: JSON, its own origin, the link's token."""
    headers = {"Content-Type": "application/json", "Origin": url.rstrip("/"),
               "Sec-Fetch-Site": "same-origin"}  # fmt: skip
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    return headers


def post(url: str, path: str, body: object, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(url + path, content=json.dumps(body), headers=headers, timeout=10)


def labels(engine: sa.Engine) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.log_id, r.annotator) for r in conn.execute(sa.text(
            "SELECT log_id, annotator FROM assay.labels ORDER BY label_id"))]  # fmt: skip


def claims(engine: sa.Engine) -> dict[str, str]:
    with engine.connect() as conn:
        return {r.log_id: r.claimed_by for r in conn.execute(sa.text(
            "SELECT log_id, claimed_by FROM assay.queue_items "
            "WHERE claimed_by IS NOT NULL AND claimed_until >= now()"))}  # fmt: skip


def raw_request(port: int, head: str, body: bytes) -> str:
    """Send `head` and `body` on a bare socket; the status line the server answered with."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(head.encode() + body)
        return conn.recv(4096).decode(errors="replace").split("\r\n", 1)[0]


def test_annotators_are_who_their_link_says_and_nothing_else(
    engine: sa.Engine, assay_env: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    make_queue(engine, assay_env, tmp_path, fake_llm)
    port = free_port()

    # Nobody invited, no proxy named: nobody could sign in, so the page is not served at all.
    nobody = assay("annotate", "serve", "--queue", "page", "--port", str(port),
                   db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert nobody.returncode == 2 and "no identity configured" in nobody.stderr
    wide = assay("annotate", "serve", "--queue", "page", "--host", "0.0.0.0", "--port",
                 str(port), db_url=assay_env, cwd=tmp_path)  # fmt: skip
    assert wide.returncode == 2 and "--public-name" in wide.stderr

    # Look-alike names are refused, case and width are one person.
    for hostile in ("alice\u200b", "\u0430lice", "al\u202eice"):
        refused = assay("annotate", "invite", "--queue", "page", hostile, db_url=assay_env,
                        cwd=tmp_path)  # fmt: skip
        assert refused.returncode == 2, (hostile, refused.stdout, refused.stderr)
        assert "\n" not in refused.stderr.strip()  # one line, no traceback
    url = f"http://127.0.0.1:{port}/"
    old = invite(assay_env, tmp_path, url, "alice", "bob")
    links = invite(assay_env, tmp_path, url, "ＡＬＩＣＥ")  # fullwidth capitals: alice again
    assert set(links) == {"alice"}
    alice, bob = token_of(links["alice"]), token_of(old["bob"])
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT token_sha256 FROM assay.annotators")).scalars()
        assert not {alice, bob} & set(stored)  # only digests are kept

    with serving(assay_env, tmp_path, port) as url:
        as_alice, as_bob = page_headers(url, alice), page_headers(url, bob)

        # No token, an old token, or a body that names someone: nobody gets in.
        assert post(url, "api/next", {}, page_headers(url)).status_code == 401
        replaced = page_headers(url, token_of(old["alice"]))  # before she was invited again
        assert post(url, "api/next", {}, replaced).status_code == 401
        assert httpx.get(url + "api/queue").status_code == 401
        assert post(url, "api/next", {"annotator": "bob"}, as_alice).status_code == 422
        assert httpx.get(url + "api/queue", headers=as_alice).json()["annotator"] == "alice"

        mine = post(url, "api/next", {}, as_alice).json()["log_id"]
        theirs = post(url, "api/next", {}, as_bob).json()["log_id"]
        assert mine != theirs
        # Alice cannot answer bob's item as bob, nor as herself (and learns nothing of it).
        stolen = post(url, "api/answer", {"log_id": theirs, "verdict": "pass"}, as_alice)
        assert stolen.status_code == 409 and "reason" not in stolen.text
        assert claims(engine) == {mine: "alice", theirs: "bob"}

        # One item at a time: asking again gives the same item, and no name can be made up.
        for _ in range(5):
            assert post(url, "api/next", {}, as_alice).json()["log_id"] == mine
        assert post(url, "api/next", {}, page_headers(url, "made-up-name")).status_code == 401
        assert claims(engine) == {mine: "alice", theirs: "bob"}

        # Cross-origin and non-JSON requests are refused even with a valid token.
        answer = {"log_id": mine, "verdict": "fail"}
        text_plain = {**as_alice, "Content-Type": "text/plain"}
        assert post(url, "api/answer", answer, text_plain).status_code == 415
        evil_origin = {**as_alice, "Origin": "http://evil.example"}
        assert post(url, "api/answer", answer, evil_origin).status_code == 403
        cross_site = {**as_alice, "Sec-Fetch-Site": "cross-site"}
        assert post(url, "api/answer", answer, cross_site).status_code == 403
        no_origin = {k: v for k, v in as_alice.items() if k != "Origin"}
        assert post(url, "api/answer", answer, no_origin).status_code == 403
        # DNS rebinding: the same server under another name serves nothing, not even the page.
        assert httpx.get(url, headers={"Host": "evil.example"}).status_code == 421
        rebound = {**as_alice, "Host": "evil.example", "Origin": "http://evil.example"}
        assert post(url, "api/answer", answer, rebound).status_code == 421
        assert labels(engine) == []

        # Bodies are capped before they are read: a declared 300 MB, or a chunked stream.
        auth = f"Authorization: Bearer {alice}\r\nOrigin: {url.rstrip('/')}\r\n"
        head = (f"POST /api/answer HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}"
                "Content-Type: application/json\r\n")  # fmt: skip
        declared = raw_request(port, head + "Content-Length: 300000000\r\n\r\n", b'{"log_id"')
        assert " 413 " in declared
        chunk = b"x" * 200_000
        streamed = raw_request(port, head + "Transfer-Encoding: chunked\r\n\r\n",
                               b"%x\r\n%s\r\n" % (len(chunk), chunk))  # fmt: skip
        assert " 413 " in streamed
        assert labels(engine) == []

        ok = post(url, "api/answer", answer, as_alice)
        assert ok.status_code == 200 and ok.json()["judge"]["reason"]
        assert labels(engine) == [(mine, "alice")]

        # A revoked link stops at once and frees its item.
        revoked = assay("annotate", "revoke", "--queue", "page", "Bob", db_url=assay_env,
                        cwd=tmp_path)  # fmt: skip
        assert revoked.returncode == 0, revoked.stderr
        assert post(url, "api/next", {}, as_bob).status_code == 401
        assert theirs not in claims(engine)

        # Without --trusted-proxy, an identity header is just a header.
        forged = {**page_headers(url), "X-Forwarded-User": "alice", "X-Forwarded-For": "10.0.0.1"}
        assert post(url, "api/next", {}, forged).status_code == 401


def test_a_listed_reverse_proxy_names_the_annotator(
    engine: sa.Engine, assay_env: str, tmp_path: Path, fake_llm: FakeLLM
) -> None:
    """Single sign-on: the proxy at a listed address signs people in and names them in a
    header; the name is normalised like an invited one."""
    make_queue(engine, assay_env, tmp_path, fake_llm)
    port = free_port()
    with serving(assay_env, tmp_path, port, "--trusted-proxy", "127.0.0.1/32",
                 "--identity-header", "X-Auth-Email") as url:  # fmt: skip
        signed_in = {**page_headers(url), "X-Auth-Email": "Carol@Example.com"}
        assert httpx.get(url + "api/queue", headers=signed_in).json()["annotator"] == (
            "carol@example.com"
        )
        item = post(url, "api/next", {}, signed_in).json()["log_id"]
        done = post(url, "api/answer", {"log_id": item, "verdict": "pass"}, signed_in)
        assert done.status_code == 200
        assert labels(engine) == [(item, "carol@example.com")]
        # From the proxy without its header, nobody; a look-alike name is refused.
        assert post(url, "api/next", {}, page_headers(url)).status_code == 401
        look_alike = {**page_headers(url), "X-Auth-Email": "c\u0430rol@example.com".encode()}
        assert post(url, "api/next", {}, look_alike).status_code == 403  # type: ignore[dict-item]
        accented = {**page_headers(url), "X-Auth-Email": "Zoë@example.com".encode()}
        assert httpx.get(url + "api/queue", headers=accented).json()["annotator"] == (
            "zoë@example.com"
        )
