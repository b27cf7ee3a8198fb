"""TLS echo server: asyncio.start_server with an SSLContext (TLS 1.2 and
1.3), streams per client.

At start-up it makes a throw-away self-signed certificate and key (with the
``openssl`` command line tool) in a private temporary directory, valid for
localhost, 127.0.0.1 and ::1 (and --host), prints the certificate's path
and deletes both on exit.  Give a client that path to trust it:

    python examples/echo_tls.py --port 8443
    #   certificate /tmp/tmpXXXX/cert.pem
    #   listening on 127.0.0.1:8443 (wfcloop, 0 pollers)
    python examples/echo_client.py --transport tls --port 8443 --cafile /tmp/tmpXXXX/cert.pem
    openssl s_client -connect 127.0.0.1:8443 -CAfile /tmp/tmpXXXX/cert.pem

--certfile/--keyfile serve a certificate of your own instead.  Prints
``listening on HOST:PORT (LOOP)`` once it accepts connections; Ctrl-C or
SIGTERM closes it (exit code 0).  Needs ``_common.py`` from this directory.
"""
import asyncio
import ipaddress
import os
import shutil
import ssl
import subprocess
import tempfile

import _common


def make_self_signed(directory, host):
    """Write cert.pem and key.pem (EC P-256, valid one day) to ``directory``."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise OSError("the openssl command line tool is needed to make a certificate")
    names = ["DNS:localhost", "IP:127.0.0.1", "IP:::1"]
    try:
        ip = ipaddress.ip_address(host)
        if not ip.is_unspecified:
            names.append(f"IP:{ip}")
    except ValueError:
        names.append(f"DNS:{host}")
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    done = subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-days", "1", "-subj", "/CN=localhost", "-keyout", key, "-out", cert,
         "-addext", "subjectAltName=" + ",".join(names),
         "-addext", "basicConstraints=critical,CA:FALSE",
         "-addext", "keyUsage=critical,digitalSignature",
         "-addext", "extendedKeyUsage=serverAuth"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True)
    if done.returncode != 0:
        raise OSError(f"openssl could not make a certificate: {done.stderr.strip()}")
    return cert, key


def server_context(certfile, keyfile):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # up to TLS 1.3
    context.load_cert_chain(certfile, keyfile)
    return context


async def echo(reader, writer):
    """Write back what the client sends, until its EOF."""
    try:
        while data := await reader.read(64 * 1024):
            writer.write(data)
            await writer.drain()  # wait while the client is not reading
    except (ConnectionError, ssl.SSLError):
        pass  # the client went away, or broke off without close_notify
    finally:
        writer.close()


async def main(args):
    stop = _common.stop_event()
    clients = {}  # task -> writer

    def connected(reader, writer):
        # A plain function, not a coroutine function: the task is ours to
        # track (start_server would make one and log it if cancelled).
        task = asyncio.create_task(echo(reader, writer))
        clients[task] = writer
        task.add_done_callback(clients.pop)

    with tempfile.TemporaryDirectory() as tmp:  # mode 0700; removed on exit
        if args.certfile:
            certfile, keyfile = args.certfile, args.keyfile
        else:
            certfile, keyfile = make_self_signed(tmp, args.host)
            print(f"certificate {certfile}", flush=True)
        context = server_context(certfile, keyfile)
        server = await asyncio.start_server(connected, args.host, args.port, ssl=context)
        _common.announce(server.sockets)
        await stop.wait()
        server.close()  # stop listening
        for writer in clients.values():
            writer.transport.abort()  # drop the clients still connected
        await asyncio.gather(*clients)  # and let their echo() return


if __name__ == "__main__":
    parser = _common.make_parser("TLS echo server (asyncio streams)", port=8443)
    parser.add_argument("--certfile", help="PEM certificate (chain) to serve "
                                           "(default: make a self-signed one)")
    parser.add_argument("--keyfile", help="its private key (default: in --certfile)")
    raise SystemExit(_common.run(main, _common.parse_args(parser)))
