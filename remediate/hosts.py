"""Which hosts are Salesforce's: the partitions orgs live under, the generic login hosts, My
Domain hosts, and loopback (a local emulator such as ``remediate sandbox serve``).

Sources: Salesforce's own CLI library, forcedotcom/sfdx-core ``src/util/sfdcUrl.ts``
(``isSalesforceDomain``: .cloudforce.com, .content.force.com, .force.com, .salesforce.com,
.salesforceliveagent.com, .secure.force.com, crmforce.mil, .sfcrmproducts.cn, citing help
article 000003652 "Salesforce domains to allowlist"; ``toLightningDomain``: the My Domain forms
.my.salesforce.com, .my.salesforce.mil, .my-salesforce.com, .my.sfcrmproducts.cn and their
Lightning twins .lightning.force.com, .lightning.crmforce.mil, .my-lightning.com,
.lightning.sfcrmapps.cn). platform-truth.md P3 cites the same file for JWT audiences.
"""

from __future__ import annotations

from urllib.parse import urlsplit

#: Domain suffixes Salesforce serves orgs, logins and APIs under, in every partition: the
#: commercial cloud, the US government cloud (.mil) and the China (Alibaba Cloud) partition.
SALESFORCE_SUFFIXES = (
    ".salesforce.com", ".force.com", ".cloudforce.com", ".salesforceliveagent.com",
    ".salesforce.mil", ".crmforce.mil", ".sfcrmproducts.cn", ".sfcrmapps.cn",
    ".my-salesforce.com", ".my-lightning.com",
)
#: A My Domain host ends in one of these (sfdx-core toLightningDomain; enhanced domains such as
#: ``acme--dev.sandbox.my.salesforce.com`` included).
MY_DOMAIN_SUFFIXES = (".my.salesforce.com", ".my.salesforce.mil", ".my-salesforce.com",
                      ".my.sfcrmproducts.cn")
#: The generic login hosts (reference 1.2): JWT bearer may use them, client credentials not.
LOGIN_HOSTS = ("login.salesforce.com", "test.salesforce.com")
LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "localhost"})


def host_of(url: str) -> str:
    """The lower-case host name of ``url`` (a bare host is read as https)."""
    try:
        return (urlsplit(url if "//" in url else f"https://{url}").hostname or "").lower()
    except ValueError:
        return ""


def is_loopback(host: str) -> bool:
    return host.lower().strip("[]") in LOOPBACK_HOSTS


def is_salesforce_host(host: str) -> bool:
    """A host in one of Salesforce's partitions (see SALESFORCE_SUFFIXES)."""
    host = host.lower().rstrip(".")
    return any(host.endswith(s) or host == s[1:] for s in SALESFORCE_SUFFIXES)


def is_my_domain_host(host: str) -> bool:
    host = host.lower().rstrip(".")
    return any(host.endswith(s) for s in MY_DOMAIN_SUFFIXES)


def is_login_host(host: str) -> bool:
    return host.lower().rstrip(".") in LOGIN_HOSTS


def org_host_problem(url: str) -> str | None:
    """Why ``url`` cannot be an org's own host (its My Domain or instance), or None: it must be
    in a Salesforce partition, or loopback (a local emulator), and not a generic login host."""
    host = host_of(url)
    if is_loopback(host):
        return None
    if is_login_host(host):
        return f"is the generic login host {host}, not the org's My Domain"
    if not is_salesforce_host(host):
        return (f"host {host or '(none)'} is not in a Salesforce domain "
                f"({', '.join(s.lstrip('.') for s in SALESFORCE_SUFFIXES)}) nor loopback")
    return None


def on_commercial_cloud(host: str) -> bool:
    """True when simple-salesforce can sign in at ``host`` by itself: it builds
    ``https://{domain}.salesforce.com`` and so knows only the commercial partition."""
    return host.lower().endswith(".salesforce.com")
