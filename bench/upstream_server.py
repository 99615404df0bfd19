"""The in-repo mock upstream (tests/support/mock_upstream.py) in a process of its own.

    python -m bench.upstream_server --port 9001

Unlike in the tests it keeps no log of requests (a 100 000-request run would grow it).
"""

from __future__ import annotations

import argparse
import collections

from aiohttp import web

from tests.support.mock_upstream import MockUpstream


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    mock = MockUpstream()
    mock.received = collections.deque(maxlen=1)
    web.run_app(mock.app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
