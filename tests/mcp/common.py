"""Shared by the MCP test clients: connect with the official Python MCP SDK (PyPI `mcp`), list
the tools, make the calls given on the command line, and print one JSON object on stdout that
tests/integration/mcp.rs asserts on.

Calls are a JSON list: [{"tool": NAME, "args": {...}}, ...]. Every result is recorded, errors
included; an exception that escapes the SDK ends the script with exit code 1 and a message.
"""

import json
import sys
import traceback

from mcp import Client


def _dump(model):
    return model.model_dump(mode="json", by_alias=True, exclude_none=True)


async def exercise(target, calls):
    out = {"tools": [], "calls": []}
    async with Client(target) as client:
        out["protocol"] = client.protocol_version
        info = client.server_info
        out["server"] = _dump(info) if info is not None else None
        listed = await client.list_tools()
        out["tools"] = [_dump(t) for t in listed.tools]
        for c in calls:
            progress = []

            async def on_progress(p, total, message, progress=progress):
                progress.append(message)

            r = await client.call_tool(c["tool"], c.get("args", {}), progress_callback=on_progress)
            text = "\n".join(b.text for b in r.content if getattr(b, "type", None) == "text")
            out["calls"].append(
                {
                    "tool": c["tool"],
                    "is_error": bool(r.is_error),
                    "text": text,
                    "structured": r.structured_content,
                    "progress": progress,
                }
            )
    return out


def main(run):
    try:
        out = run()
    except BaseException as e:  # noqa: BLE001 - report everything to the Rust test
        print("mcp client failed: " + "".join(traceback.format_exception(e)), file=sys.stderr)
        sys.exit(1)
    print(json.dumps(out))
