"""Calls a tool that needs an approval through master with the official Python MCP SDK, answering
master's elicitation as told, and prints one JSON report.

Usage: python3 elicit_approval.py <mcp-url> <bearer-token|-> <tool> <accept|reject|decline|cancel> [arguments-json]

A token of `-` sends no Authorization header (auth off). Without arguments-json the tool gets
{"key": "elicited-<answer>"}.

accept answers approve = true, reject answers approve = false, decline and cancel are the
elicitation actions of the same names.
"""

import asyncio
import json
import sys

import mcp.types as types
from mcp import ClientSession
from mcp.client.streamable_http import create_mcp_http_client
from mcp.client.streamable_http import streamable_http_client


def attr(obj, snake: str, camel: str):
    """SDK 2.x uses snake_case attributes, 1.x camelCase."""
    return getattr(obj, snake, None) if hasattr(obj, snake) else getattr(obj, camel, None)


async def main() -> None:
    url, token, tool, answer = sys.argv[1:5]
    arguments = json.loads(sys.argv[5]) if len(sys.argv) > 5 else {"key": f"elicited-{answer}"}
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        if answer == "accept":
            return types.ElicitResult(action="accept", content={"approve": True, "comment": "ok from python"})
        if answer == "reject":
            return types.ElicitResult(action="accept", content={"approve": False, "comment": "no from python"})
        return types.ElicitResult(action=answer)

    headers = {} if token == "-" else {"Authorization": f"Bearer {token}"}
    http_client = create_mcp_http_client(headers=headers)
    async with streamable_http_client(url, http_client=http_client) as streams:
        read, write = streams[0], streams[1]
        async with ClientSession(read, write, elicitation_callback=on_elicit) as session:
            init = await session.initialize()
            result = await session.call_tool(tool, arguments)
            print(json.dumps({
                "protocol": str(attr(init, "protocol_version", "protocolVersion")),
                "asked": asked,
                "is_error": bool(attr(result, "is_error", "isError")),
                "text": "\n".join(c.text for c in result.content if getattr(c, "text", None)),
                "structured": attr(result, "structured_content", "structuredContent"),
            }))


asyncio.run(main())
