"""A FastMCP server with the same cheap tool as our conformance fixture, for mcp-bench.

Usage: python3 fastmcp_server.py <port>
"""

import sys

from fastmcp import FastMCP

mcp = FastMCP("bench-fastmcp")


@mcp.tool
def test_simple_text() -> str:
    """Returns one text block."""
    return "This is a simple text response for testing."


if __name__ == "__main__":
    mcp.run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), path="/mcp", show_banner=False, log_level="WARNING")
