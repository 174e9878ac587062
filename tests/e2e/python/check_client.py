"""Drives a server with the official Python MCP SDK over both transports and prints one JSON report.

Usage: python3 check_client.py <base-url> [bearer-token]

Environment: MCP_ENDPOINT (a master toolset: uses /mcp/<name> and /sse/<name>), MCP_TOOL_PREFIX
(prefix of the CMDB's tools, e.g. `cmdb_` through master).
"""

import os

import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.sse import sse_client

from mcp.client.streamable_http import create_mcp_http_client
from mcp.client.streamable_http import streamable_http_client as _streamable


def attr(obj, snake: str, camel: str):
    """SDK 2.x uses snake_case attributes, 1.x camelCase."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


async def exercise(session: ClientSession) -> dict:
    init = await session.initialize()
    tools = await session.list_tools()
    prefix = os.environ.get("MCP_TOOL_PREFIX", "")
    ok = await session.call_tool(f"{prefix}getHost", {"name": "aicrusher"})
    missing = await session.call_tool(f"{prefix}getHost", {"name": "no-such-host"})
    return {
        "server": attr(init, "server_info", "serverInfo").name,
        "tools": sorted(t.name for t in tools.tools),
        "read_only": {
            t.name: bool(t.annotations and attr(t.annotations, "read_only_hint", "readOnlyHint"))
            for t in tools.tools
        },
        "host": (attr(ok, "structured_content", "structuredContent") or {}).get("host", {}).get("name"),
        "host_is_error": bool(attr(ok, "is_error", "isError")),
        "missing_is_error": bool(attr(missing, "is_error", "isError")),
        "missing_text": missing.content[0].text if missing.content else "",
    }


async def main() -> None:
    base = sys.argv[1].rstrip("/")
    suffix = f"/{os.environ['MCP_ENDPOINT']}" if os.environ.get("MCP_ENDPOINT") else ""
    headers = {"Authorization": f"Bearer {sys.argv[2]}"} if len(sys.argv) > 2 else None
    report = {}
    async with sse_client(f"{base}/sse{suffix}", headers=headers) as (read, write):
        async with ClientSession(read, write) as session:
            report["sse"] = await exercise(session)
    http_client = create_mcp_http_client(headers=headers) if headers else None
    async with _streamable(f"{base}/mcp{suffix}", http_client=http_client) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write) as session:
            report["streamable_http"] = await exercise(session)
    print(json.dumps(report))


asyncio.run(main())
