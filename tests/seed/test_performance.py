"""The seed's performance test: 100 concurrent `get_system_status` calls through the
orchestrator; prints the success rate and the time taken.

Run against a running stack: python3 tests/seed/test_performance.py
"""

import asyncio
import sys
import time

from seed_client import orchestrator

CONCURRENT = 100


async def test_concurrent_requests():
    async with orchestrator() as orch:
        async def one():
            try:
                result = await orch.call_tool("get_system_status", {})
                return result.get("service") == "master" and len(result.get("downstreams", [])) > 0
            except Exception as e:  # a failed call counts as a failure, not a crash of the test
                print(f"call failed: {e}", file=sys.stderr)
                return False

        start = time.perf_counter()
        results = await asyncio.gather(*(one() for _ in range(CONCURRENT)))
        elapsed = time.perf_counter() - start
        ok = sum(results)
        rate = 100.0 * ok / CONCURRENT
        print(f"{CONCURRENT} concurrent get_system_status: success rate {rate:.1f}% in {elapsed:.3f} s")
        return rate


if __name__ == "__main__":
    rate = asyncio.run(test_concurrent_requests())
    sys.exit(0 if rate == 100.0 else 1)
