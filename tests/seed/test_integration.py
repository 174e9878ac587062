"""The seed's integration test: a workflow in the seed's own shape (`id` and `steps` at the top
level, steps without ids) runs through the orchestrator and completes.

Run against a running stack: python3 tests/seed/test_integration.py
"""

import asyncio
import sys

from seed_client import orchestrator


async def test_workflow_execution():
    async with orchestrator() as orch:
        result = await orch.call_tool("execute_workflow", {
            "id": "test-workflow",
            "steps": [
                {"service": "linux", "tool": "runCommand", "params": {"command": "uptime"}},
                {"service": "cmdb", "tool": "getHost", "params": {"name": "aicrusher"}},
            ],
        })
        assert result["status"] == "completed", result
        return result


async def test_template_shape():
    async with orchestrator() as orch:
        result = await orch.call_tool("execute_workflow", {"definition": {
            "name": "seed-template",
            "description": "The seed's template shape: name, description, steps",
            "steps": [
                {"service": "cmdb", "tool": "listHosts", "params": {}},
                {"service": "linux", "tool": "runCommand", "params": {"command": "uname -s"}},
            ],
        }})
        assert result["status"] == "completed", result
        return result


async def main():
    for test in (test_workflow_execution, test_template_shape):
        result = await test()
        steps = ", ".join(f"{s['id']}={s['status']}" for s in result["steps"])
        print(f"{test.__name__}: {result['status']} ({steps})")
    print("2 passed, 0 failed")


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except AssertionError as e:
        print(f"FAILED: {e}", file=sys.stderr)
        sys.exit(1)
