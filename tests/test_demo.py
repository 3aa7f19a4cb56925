"""The demo app: counter, login (the id changes, and the page says why), logout, the live sessions
page and revoking, the secret kept once with mode 0600, and sessions that survive a restart."""

from __future__ import annotations

import asyncio
import re
import stat
from pathlib import Path
from typing import Any

import httpx
import pytest

from sessionware.demo import create_app


@pytest.fixture(autouse=True)
def cache(tmp_path: Path, monkeypatch: Any) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    monkeypatch.delenv("SESSION_SECRET", raising=False)
    return tmp_path / "sessionware"


def visits(page: str) -> int:
    found = re.search(r'id="visits">(\d+)<', page)
    assert found, page
    return int(found.group(1))


def sid(page: str) -> str:
    found = re.search(r'id="sid">([^<]+)<', page)
    assert found
    return found.group(1)


async def post(client: httpx.AsyncClient, path: str, **fields: str) -> httpx.Response:
    """Post a form as the demo's own pages do: with the session's CSRF token (read from the
    sessions page, which leaves the visit counter alone)."""
    page = (await client.get("/sessions")).text
    found = re.search(r"name='csrf' value='([^']+)'", page)
    assert found, page
    return await client.post(path, data={**fields, "csrf": found.group(1)})


async def browse(app: Any, steps: Any) -> Any:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", follow_redirects=True
    ) as client:
        return await steps(client)


def test_counter_login_logout(cache: Path) -> None:
    async def steps(client: httpx.AsyncClient) -> list[str]:
        pages = [(await client.get("/")).text for _ in range(2)]
        pages.append((await post(client, "/login", user="ann")).text)
        pages.append((await client.get("/")).text)
        pages.append((await post(client, "/logout")).text)
        return pages

    first, second, after_login, again, after_logout = asyncio.run(browse(create_app(), steps))
    assert (visits(first), visits(second)) == (1, 2)
    assert "id='logout'" not in second and "id='login'" in second
    assert sid(after_login) != sid(second)
    assert "session fixation protection" in after_login
    assert "Signed in as <strong id='user'>ann</strong>" in after_login
    assert visits(after_login) == 3, "the data is kept at login"
    assert "id='login'" not in after_login and "id='logout'" in after_login
    assert "session fixation" not in again
    assert visits(after_logout) == 1, "logout ends the session"
    assert "Not signed in" in after_logout
    assert "HttpOnly (hidden from JavaScript)" in first


def test_sessions_page_lists_and_revokes(cache: Path) -> None:
    app = create_app()

    async def other(client: httpx.AsyncClient) -> str:
        return sid((await post(client, "/login", user="bob")).text)

    bobs = asyncio.run(browse(app, other))

    async def steps(client: httpx.AsyncClient) -> tuple[str, str]:
        await client.get("/")
        listing = (await client.get("/sessions")).text
        revoked = (await post(client, "/sessions/revoke", sid=bobs)).text
        return listing, revoked

    listing, revoked = asyncio.run(browse(app, steps))
    assert bobs[:8] in listing and "bob" in listing and "(you)" in listing
    assert bobs[:8] not in revoked


def test_the_secret_is_made_once_with_mode_0600_and_sessions_survive_a_restart(
    cache: Path,
) -> None:
    async def first(client: httpx.AsyncClient) -> tuple[str, str]:
        page = (await post(client, "/login", user="ann")).text
        return page, client.cookies["connect.sid"]

    page, cookie = asyncio.run(browse(create_app(), first))
    secret = cache / "demo.secret"
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600
    assert (cache / "demo.db").exists()

    async def after_restart(client: httpx.AsyncClient) -> str:
        client.cookies.set("connect.sid", cookie)
        return (await client.get("/")).text

    restarted = asyncio.run(browse(create_app(), after_restart))
    assert sid(restarted) == sid(page)
    assert "Signed in as <strong id='user'>ann</strong>" in restarted
    assert secret.read_text() == (cache / "demo.secret").read_text()


def test_session_secret_overrides_the_file(cache: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("SESSION_SECRET", "x" * 40)
    create_app()
    assert not (cache / "demo.secret").exists()


def test_sign_out_other_devices() -> None:
    from sessionware import MemoryStore

    app = create_app(store=MemoryStore())

    async def both() -> tuple[str, str, str]:
        transport = httpx.ASGITransport(app=app)
        laptop = httpx.AsyncClient(transport=transport, base_url="http://t", follow_redirects=True)
        phone = httpx.AsyncClient(transport=transport, base_url="http://t", follow_redirects=True)
        async with laptop, phone:
            await post(phone, "/login", user="ann")
            seen = (await post(laptop, "/login", user="ann")).text
            after = (await post(laptop, "/logout-others")).text
            return seen, after, (await phone.get("/")).text

    seen, after, phone_page = asyncio.run(both())
    assert "id='others'>1<" in seen
    assert seen.count("class='device") == 2 and seen.count("button class='quiet end'") == 1
    assert "id='others'>0<" in after
    assert "id='login'" in phone_page, "the other device is still signed in"


def test_a_form_posted_from_another_site_or_without_the_token_is_refused(cache: Path) -> None:
    """The revoke form deletes any session: it must be the demo's own page that posts it."""
    app = create_app()

    async def steps(client: httpx.AsyncClient) -> list[int]:
        victim = sid((await post(client, "/login", user="bob")).text)
        page = (await client.get("/sessions")).text
        token = re.search(r"name='csrf' value='([^']+)'", page)
        assert token is not None
        forged = [
            await client.post("/sessions/revoke", data={"sid": victim}),
            await client.post("/sessions/revoke", data={"sid": victim, "csrf": "guess"}),
            await client.post(
                "/sessions/revoke",
                data={"sid": victim, "csrf": token.group(1)},
                headers={"origin": "https://evil.example"},
            ),
            await client.post(
                "/sessions/revoke",
                data={"sid": victim, "csrf": token.group(1)},
                headers={"sec-fetch-site": "cross-site"},
            ),
        ]
        still_there = victim[:8] in (await client.get("/sessions")).text
        own = await post(client, "/sessions/revoke", sid=victim)
        return [response.status_code for response in forged] + [still_there, own.status_code]

    assert asyncio.run(browse(app, steps)) == [403, 403, 403, 403, True, 200]
