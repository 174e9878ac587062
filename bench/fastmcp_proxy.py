"""FastMCP's proxy (create_proxy, successor of the seed's FastMCP.as_proxy) in front of a server, for mcp-bench.

Usage: python3 fastmcp_proxy.py <port> <upstream-url>
"""

import sys

from fastmcp.server import create_proxy

proxy = create_proxy(sys.argv[2], name="bench-fastmcp-proxy")

if __name__ == "__main__":
    proxy.run(transport="http", host="127.0.0.1", port=int(sys.argv[1]), path="/mcp", show_banner=False, log_level="WARNING")
