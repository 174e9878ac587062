"""The official Python MCP SDK's own OAuth clients against a server that wants OAuth: discovery
(RFC 9728 protected resource metadata, then RFC 8414 / OpenID metadata), dynamic client
registration, authorization code with PKCE (the provider's login and consent forms are submitted
over HTTP, as a person's browser would), or client credentials. Then it lists and calls tools.

Usage:
  python3 sdk_oauth.py <mcp-url> user <login> <calls-json>
  python3 sdk_oauth.py <mcp-url> machine <client-id> <client-secret-file> <calls-json>

<calls-json> is a JSON list of [tool, arguments]. Prints one JSON object: the tool names listed and
each call's is_error, text and structured content.
"""

import asyncio
import json
import re
import sys
from html import unescape
from urllib.parse import parse_qs, urljoin, urlparse

try:
    import httpx2
except ImportError:  # SDK 1.x uses httpx
    import httpx as httpx2
from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider
from mcp.client.auth.extensions.client_credentials import ClientCredentialsOAuthProvider
from mcp.client.streamable_http import create_mcp_http_client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

REDIRECT_URI = "http://127.0.0.1:9/callback"


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


class Browser:
    """Follows the authorization request through the provider's login and consent pages."""

    def __init__(self, login: str):
        self.login = login
        self.result = None

    async def open(self, url: str) -> None:
        async with httpx2.AsyncClient(follow_redirects=False, timeout=30) as http:
            for _ in range(20):
                if url.startswith(REDIRECT_URI):
                    q = parse_qs(urlparse(url).query)
                    if "error" in q:
                        raise RuntimeError(f"authorization failed: {q}")
                    self.result = AuthorizationCodeResult(
                        code=q["code"][0], state=q.get("state", [None])[0], iss=q.get("iss", [None])[0]
                    )
                    return
                r = await http.get(url)
                if r.status_code in (302, 303):
                    url = urljoin(url, r.headers["location"])
                    continue
                form = re.search(r'<form[^>]*action="([^"]+)"', r.text)
                if r.status_code != 200 or not form:
                    raise RuntimeError(f"unexpected page {r.status_code} at {url}: {r.text[:500]}")
                fields = dict(
                    (unescape(n), unescape(v))
                    for n, v in re.findall(r'<input[^>]*type="hidden"[^>]*name="([^"]+)"[^>]*value="([^"]*)"', r.text)
                )
                if 'name="login"' in r.text:
                    fields.update({"login": self.login, "password": "any"})
                r = await http.post(urljoin(url, unescape(form.group(1))), data=fields)
                if r.status_code not in (302, 303):
                    raise RuntimeError(f"form post answered {r.status_code}: {r.text[:500]}")
                url = urljoin(url, r.headers["location"])
        raise RuntimeError("too many redirects")

    async def callback(self) -> AuthorizationCodeResult:
        return self.result


async def main() -> None:
    url, kind = sys.argv[1], sys.argv[2]
    storage = MemoryStorage()
    if kind == "user":
        browser = Browser(sys.argv[3])
        auth = OAuthClientProvider(
            server_url=url,
            client_metadata=OAuthClientMetadata(
                client_name=f"sdk-test-{sys.argv[3]}",
                redirect_uris=[REDIRECT_URI],
                grant_types=["authorization_code", "refresh_token"],
                response_types=["code"],
            ),
            storage=storage,
            redirect_handler=browser.open,
            callback_handler=browser.callback,
        )
        calls = json.loads(sys.argv[4])
    else:
        with open(sys.argv[4]) as f:
            secret = f.read().strip()
        auth = ClientCredentialsOAuthProvider(
            server_url=url, storage=storage, client_id=sys.argv[3], client_secret=secret, scope="mcp:read mcp:admin"
        )
        calls = json.loads(sys.argv[5])
    report = {"results": []}
    async with streamable_http_client(url, http_client=create_mcp_http_client(auth=auth)) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            tools = await session.list_tools()
            report["tools"] = sorted(t.name for t in tools.tools)
            for name, args in calls:
                r = await session.call_tool(name, args)
                report["results"].append(
                    {
                        "is_error": bool(r.is_error),
                        "text": "\n".join(c.text for c in r.content if getattr(c, "text", None)),
                        "structured": r.structured_content,
                    }
                )
    print(json.dumps(report))


asyncio.run(main())
