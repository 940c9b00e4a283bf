"""MCP client over streamable HTTP.

usage: client_http.py CALLS_JSON URL
"""

import anyio
import json
import sys

from common import exercise, main


def run():
    calls = json.loads(sys.argv[1])
    return anyio.run(exercise, sys.argv[2], calls)


if __name__ == "__main__":
    main(run)
