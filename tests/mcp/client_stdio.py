"""MCP client over stdio: starts the server command itself.

usage: client_stdio.py CALLS_JSON COMMAND [ARGS...]
The server's environment is this script's environment.
"""

import anyio
import json
import os
import sys

from mcp import StdioServerParameters

from common import exercise, main


def run():
    calls = json.loads(sys.argv[1])
    command, args = sys.argv[2], sys.argv[3:]
    params = StdioServerParameters(command=command, args=args, env=dict(os.environ))
    return anyio.run(exercise, params, calls)


if __name__ == "__main__":
    main(run)
