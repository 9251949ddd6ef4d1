"""Whether an address is this machine: where the agent may listen, whom the client may trust.

Top level and stdlib-only because both sides need it: `dump` and `doctor` must not load the
agent package, and the agent must not load the client.
"""

from __future__ import annotations

import ipaddress


def is_loopback(host: str) -> bool:
    """True for localhost and loopback IPs (127.0.0.0/8, ::1); other host names are not."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
