"""``python -m wfcloop``: what this installation is and where it runs."""
import os
import platform
import sys


def main():
    from . import __version__
    print(f"wfcloop {__version__}")
    print(f"Python {platform.python_version()} ({platform.python_implementation()}) at {sys.executable}")
    print(f"kernel {platform.system()} {platform.release()} {platform.machine()}")
    print(f"CPUs usable: {len(os.sched_getaffinity(0))} of {os.cpu_count()}")
    from . import _config, _eventpoll   # importing wfcloop already needed them
    print(f"compiled core: loaded from {_eventpoll.__file__}")
    env = _config.raw(_config.POLLERS)
    source = f"{_config.POLLERS}={env!r}" if env not in (None, "") else "from the CPU count"
    try:
        pollers = _config.default_pollers()
    except ValueError as exc:
        print(f"pollers default: invalid {_config.POLLERS} ({exc})")
        return 1
    mode = "inline mode" if pollers == 0 else f"{pollers} poller threads"
    print(f"pollers default: {pollers} ({mode}; {source})")
    switches = [
        ("poller mode", _config.ADAPTIVE, _config.default_adaptive,
         "adaptive (pollers parked while the loop thread does as well)",
         "pinned (WFCLOOP_ADAPTIVE=0)"),
        ("poller-side I/O", _config.POLLER_IO, _config.default_poller_io,
         "on (in the pollers phase, pollers recv and send for socket transports)",
         "off (WFCLOOP_POLLER_IO=0)"),
    ]
    for label, name, read, on, off in switches:
        try:
            value = read()
        except ValueError as exc:
            print(f"{label}: invalid {name} ({exc})")
            return 1
        print(f"{label}: {on if value else off}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
