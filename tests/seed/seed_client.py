"""The seed's test harness, on the official Python MCP SDK: an `orchestrator` whose `call_tool`
returns the tool's JSON answer as a dict, the way the seed's tests read it.

The seed's tests talk to the orchestrator (master) only; MCP_MASTER_URL (default
http://127.0.0.1:8000/mcp) says where it is.
"""

import contextlib
import json
import os

from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

MASTER_URL = os.environ.get("MCP_MASTER_URL", "http://127.0.0.1:8000/mcp")


def attr(obj, snake, camel):
    """SDK 2.x uses snake_case attributes, 1.x camelCase."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


class Orchestrator:
    def __init__(self, session):
        self.session = session

    async def call_tool(self, name, arguments):
        result = await self.session.call_tool(name, arguments)
        structured = attr(result, "structured_content", "structuredContent")
        if structured is not None:
            return structured
        text = "\n".join(c.text for c in result.content if getattr(c, "text", None))
        try:
            return json.loads(text)
        except ValueError:
            return {"status": "error" if attr(result, "is_error", "isError") else "ok", "text": text}


@contextlib.asynccontextmanager
async def orchestrator():
    async with streamable_http_client(MASTER_URL) as streams:
        async with ClientSession(streams[0], streams[1]) as session:
            await session.initialize()
            yield Orchestrator(session)
