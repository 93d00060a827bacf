"""python -m invoke_pachyderm.testing.pachd_double --port 0 [--registry URL] [--token T]...

Prints ``pachd double listening on 127.0.0.1:PORT`` once serving, then runs
until SIGINT or SIGTERM.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading

from .server import PachdDouble


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m invoke_pachyderm.testing.pachd_double")
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any)")
    parser.add_argument("--registry", default=None, help="registry URL, e.g. http://127.0.0.1:5000")
    parser.add_argument("--token", action="append", default=[], help="accepted auth token (repeatable)")
    parser.add_argument("--start-delay", type=float, default=0.05, help="seconds a pipeline starts")
    parser.add_argument(
        "--version", "--pachd-version", dest="version", default="2.11.2",
        help="pachd version to model: 2.8.0 and later have cluster/project defaults, CreatePipelineV2 "
        "and user/effective spec JSON; earlier ones do not",
    )
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    double = PachdDouble(
        registry_url=args.registry,
        tokens=args.token,
        version=args.version,
        start_delay=args.start_delay,
        port=args.port,
    ).start()
    done = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: done.set())
    print(f"pachd double listening on {double.address}", flush=True)
    done.wait()
    double.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
