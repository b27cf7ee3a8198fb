"""What the examples share: the ``--loop`` and ``--pollers`` options, running
``main(args)`` on the chosen event loop, stopping on SIGINT/SIGTERM and the
"listening on" line.

Every example in this directory imports this file: when you copy an example,
copy ``_common.py`` next to it (or paste in the few functions it uses).

    --loop wfcloop    wfcloop.run(main(args), pollers=args.pollers)  (default)
    --loop uvloop     uvloop.run(main(args)); exit code 2 if uvloop is missing
    --loop asyncio    asyncio.run(main(args))
"""
import argparse
import asyncio
import os
import signal
import socket
import ssl
import sys
import tempfile

LOOPS = ("wfcloop", "uvloop", "asyncio")

# The listening sockets' accept queue.  asyncio's default (100) is short for
# a burst of clients connecting at once: the kernel drops the SYNs that do
# not fit and each such client waits a 1 s retransmit.  The kernel caps it
# at net.core.somaxconn.
BACKLOG = 1024

# Where echo_unix.py listens and echo_client.py --unix connects by default.
UNIX_PATH = os.path.join(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir(),
                         "wfcloop-echo.sock")


def make_parser(description, *, port=None, client=False):
    """An argument parser with --loop and --pollers, plus --host and --port
    (default host 127.0.0.1: loopback only) when ``port`` is given: where a
    server listens, or with ``client`` where a client connects."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--loop", choices=LOOPS, default="wfcloop",
                        help="event loop to run on (default: %(default)s)")
    parser.add_argument("--pollers", type=int, metavar="N",
                        help="wfcloop's poller threads; 0 is inline mode "
                             "(default: wfcloop.default_pollers())")
    if port is not None and client:
        parser.add_argument("--host", default="127.0.0.1",
                            help="server address (default: %(default)s)")
        parser.add_argument("--port", type=int, default=port,
                            help="server port (default: %(default)s)")
    elif port is not None:
        parser.add_argument("--host", default="127.0.0.1",
                            help="address to listen on (default: %(default)s; "
                                 "0.0.0.0 or :: for every interface)")
        parser.add_argument("--port", type=int, default=port,
                            help="port (default: %(default)s; 0: any free port)")
    return parser


def add_tls_options(parser):
    """--certfile and --keyfile: serve TLS with this certificate and key
    (PEM files; both or neither)."""
    parser.add_argument("--certfile", help="serve TLS with this certificate (PEM)")
    parser.add_argument("--keyfile", help="the certificate's private key (PEM)")


def server_ssl_context(args):
    """The server's SSLContext for --certfile/--keyfile, or None (plain)."""
    if not getattr(args, "certfile", None):
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(args.certfile, args.keyfile)
    return context


def parse_args(parser, argv=None):
    """Parse the command line; usage errors exit with code 2."""
    args = parser.parse_args(argv)
    if args.pollers is not None and args.loop != "wfcloop":
        parser.error("--pollers only applies to --loop wfcloop")
    if args.pollers is not None and args.pollers < 0:
        parser.error("--pollers must be 0 or more")
    if bool(getattr(args, "certfile", None)) != bool(getattr(args, "keyfile", None)):
        parser.error("--certfile and --keyfile go together")
    if args.loop != "asyncio":
        try:
            __import__(args.loop)
        except ImportError:
            hint = ("install wfcloop from its repository (pip install .), and run "
                    "this with that environment's python"
                    if args.loop == "wfcloop" else f"pip install {args.loop}")
            parser.error(f"--loop {args.loop} needs the {args.loop} package: {hint}")
    return args


def run(main, args):
    """Run ``main(args)`` on the loop chosen with --loop and return its result.

    An OSError that escapes ``main`` (say, the port is in use) is printed as
    one line and gives exit code 1 instead of a traceback.
    """
    try:
        if args.loop == "wfcloop":
            import wfcloop
            return wfcloop.run(main(args), pollers=args.pollers)
        if args.loop == "uvloop":
            import uvloop
            return uvloop.run(main(args))
        return asyncio.run(main(args))
    except OSError as exc:
        print(f"{os.path.basename(sys.argv[0])}: error: {exc}", file=sys.stderr)
        return 1


def stop_event():
    """An asyncio.Event that SIGINT or SIGTERM sets (call it inside the loop).

    Handling the signals in the loop, rather than as KeyboardInterrupt, lets
    a server close its sockets and exit with code 0.
    """
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    return stop


def announce(sockets):
    """Print ``listening on ADDRESS (LOOP)`` for each listening socket, and
    flush, so that whoever started us can read the port chosen for --port 0."""
    loop = asyncio.get_running_loop()
    name = type(loop).__module__.partition(".")[0]
    if name == "wfcloop":
        name += f", {loop.pollers} pollers"
    for sock in sockets:
        addr = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            where = addr if isinstance(addr, str) else repr(addr)
        elif sock.family == socket.AF_INET6:
            where = f"[{addr[0]}]:{addr[1]}"
        else:
            where = f"{addr[0]}:{addr[1]}"
        print(f"listening on {where} ({name})", flush=True)
