"""TXT lookups for domain verification, through dnspython.

``KAKIN_DNS_NAMESERVER`` (``host`` or ``host:port``) names the server to ask;
without it the system's resolver configuration is used.
"""

from __future__ import annotations

import os

import dns.exception
import dns.resolver

from kakin.domain import errors


class TxtResolver:
    def __init__(self, nameserver: str | None = None, timeout: float = 3.0) -> None:
        self.nameserver = nameserver
        self.timeout = timeout

    @classmethod
    def from_env(cls) -> TxtResolver:
        return cls(os.environ.get("KAKIN_DNS_NAMESERVER") or None)

    def txt(self, name: str) -> list[str]:
        """The TXT strings published at ``name``; none when the name or the record does not exist.

        Raises DnsUnavailable when no server answers, so a verification is never refused for a network fault.
        """
        resolver = dns.resolver.Resolver(configure=self.nameserver is None)
        if self.nameserver is not None:
            host, _, port = self.nameserver.rpartition(":") if ":" in self.nameserver else (self.nameserver, "", "53")
            resolver.nameservers = [host]
            resolver.port = int(port)
        resolver.lifetime = self.timeout
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except (dns.exception.Timeout, dns.resolver.NoNameservers) as exc:
            raise errors.DnsUnavailable(f"no DNS server answered for {name} ({type(exc).__name__}); try again later",
                                        param="domain") from exc
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]
