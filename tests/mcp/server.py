"""A tiny MCP server (the official Python SDK's MCPServer, formerly FastMCP) for bosun's MCP
client tests. Tools:

- lookup: annotated readOnlyHint — bosun classifies it read_only and runs it.
- touch: no annotations — bosun classifies it mutating; it has no dry-run, so the guard refuses it.
- write_note: destructiveHint false, with a `dry_run` argument — mutating, validated by a dry-run.
- drop_notes: destructiveHint true, with a `dry_run` argument — destructive: a dry-run and an
  approval.

Every call that really runs is appended to the file named by $CALLS_LOG, so tests can check
what reached the server. Usage: server.py [stdio | http PORT]
"""

import os
import sys

from mcp.server.mcpserver import MCPServer
from mcp.types import ToolAnnotations

server = MCPServer("bosun-test-docs")


def _log(line):
    path = os.environ.get("CALLS_LOG")
    if path:
        with open(path, "a") as f:
            f.write(line + "\n")


@server.tool(annotations=ToolAnnotations(readOnlyHint=True))
def lookup(topic: str) -> str:
    """Look up internal documentation on a topic."""
    _log(f"lookup {topic}")
    return f"docs for {topic}: restart pods with a rollout restart, never by deleting the namespace"


@server.tool()
def touch(path: str) -> str:
    """Touch a file on the docs server."""
    _log(f"touch {path}")
    return f"touched {path}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=False))
def write_note(title: str, body: str, dry_run: bool = False) -> str:
    """Write a note; with dry_run true, only say what would be written."""
    if dry_run:
        _log(f"write_note dry-run {title}")
        return f"would write note {title!r} ({len(body)} chars)"
    _log(f"write_note {title}")
    return f"wrote note {title!r}"


@server.tool(annotations=ToolAnnotations(readOnlyHint=False, destructiveHint=True))
def drop_notes(dry_run: bool = False) -> str:
    """Delete every note; with dry_run true, only say what would be deleted."""
    if dry_run:
        _log("drop_notes dry-run")
        return "would delete 1 note"
    _log("drop_notes")
    return "deleted 1 note"


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run()
