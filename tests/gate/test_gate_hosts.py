"""Parsing, normalisation, address classification, patterns and rules, including property
tests that no spelling of a denied host gets past its deny rule."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from console.gate import (
    BadPattern,
    BadTarget,
    NetworkRules,
    is_globally_routable,
    normalise_host,
    parse_absolute_url,
    parse_connect_target,
    parse_pattern,
)
from console.policy.hosts import Target, embedded_ipv4

# -- targets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("text,host,port", [
    ("Example.COM:443", "example.com", 443),
    ("example.com.:1", "example.com", 1),
    ("[::1]:443", "::1", 443),
    ("[::FFFF:7f00:1]:80", "::ffff:127.0.0.1", 80),  # a mapped IPv4 dotted (s23)
    ("１２７.０.０.１:443", "127.0.0.1", 443),  # full-width digits map to ASCII under UTS 46
    ("bücher.de:443", "xn--bcher-kva.de", 443),
    ("a。b.com:443", "a.b.com", 443),  # ideographic full stop is a dot
    ("e\u200bvil.co\u00adm:443", "evil.com", 443),  # UTS 46 drops invisible characters
])
def test_connect_targets(text: str, host: str, port: int) -> None:
    assert parse_connect_target(text) == Target(host, port)


@pytest.mark.parametrize("text", [
    "", ":443", "example.com:", "example.com:0", "example.com:００443", "example.com:٤٤٣",
    "example.com:443 ", "[::1]", "[::1]443", "::1:443", "[fe80::1%eth0]:443", "[1.2.3.4]:443",
    "a..b.com:443", "-a.com:443", "a_b.com:443", "example.com..:443", "a/b.com:443",
    "example.com\\:443", "0x7f.0.0.1:443", "0177.0.0.1:443", "127.0.0.01:443", "1.2.3:443",
    "256.1.1.1:443", "example.123:443", "a" * 64 + ".com:443", "xn--zz.com:443",
    "example.com\t:443",
])
def test_connect_rejects(text: str) -> None:
    with pytest.raises(BadTarget):
        parse_connect_target(text)


@pytest.mark.parametrize("url,host,port,path", [
    ("http://example.com", "example.com", 80, "/"),
    ("http://example.com:8080/a/b?c=d#frag", "example.com", 8080, "/a/b?c=d"),
    ("http://user:pw@example.com/x", "example.com", 80, "/x"),
    ("HTTP://[2606:4700::1]:81/", "2606:4700::1", 81, "/"),
    ("http://example.com?q", "example.com", 80, "/?q"),
])
def test_absolute_urls(url: str, host: str, port: int, path: str) -> None:
    assert parse_absolute_url(url) == (Target(host, port), path)


@pytest.mark.parametrize("url", [
    "https://example.com/", "/relative", "http:///path", "http://a@b@c.com/",
    "http://example.com:80:80/", "http://evil.com\\@example.com/", "http://ex ample.com/",
    "http://example.com%2f.evil.com/", "http://[::1/", "http://example.com:+80/",
])
def test_absolute_url_rejects(url: str) -> None:
    with pytest.raises(BadTarget):
        parse_absolute_url(url)


@settings(max_examples=400)
@given(st.text(max_size=40))
def test_parsers_only_raise_bad_target(text: str) -> None:
    """Hostile input gives a Target or BadTarget, never another exception."""
    for parse in (parse_connect_target, lambda t: parse_absolute_url("http://" + t)):
        try:
            parse(text)
        except BadTarget:
            pass


@settings(max_examples=300)
@given(st.text(min_size=1, max_size=30))
def test_normalisation_is_idempotent_and_ascii(text: str) -> None:
    try:
        host = normalise_host(text)
    except BadTarget:
        return
    assert host.isascii() and host == host.lower() and not host.endswith(".")
    assert normalise_host(host if ":" not in host else f"[{host}]") == host


# -- addresses ----------------------------------------------------------------------------------

@pytest.mark.parametrize("addr", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "100.127.255.254", "0.0.0.0", "0.1.2.3", "255.255.255.255", "224.0.0.1", "240.0.0.1",
    "192.0.2.1", "198.51.100.1", "203.0.113.1", "198.18.0.1", "192.0.0.8", "192.88.99.1",
    "::", "::1", "fe80::1", "fc00::1", "fd12::1", "ff02::1", "fec0::1", "2001:db8::1",
    "3fff::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:0:169.254.169.254",
    "64:ff9b::7f00:1", "64:ff9b::a9fe:a9fe", "64:ff9b:1::a9fe:a9fe", "2002:7f00:1::1",
    "2002:a9fe:a9fe::", "2001:0:4136:e378:8000:63bf:3fff:fdd2", "::127.0.0.1", "100::1",
    "2001:2::1", "5f00::1",
])
def test_not_globally_routable(addr: str) -> None:
    assert not is_globally_routable(ipaddress.ip_address(addr))


@pytest.mark.parametrize("addr", [
    "8.8.8.8", "93.184.215.14", "1.1.1.1", "2606:4700::1111", "::ffff:8.8.8.8",
    "64:ff9b::808:808", "2002:808:808::1",
])
def test_globally_routable(addr: str) -> None:
    assert is_globally_routable(ipaddress.ip_address(addr))


def test_python_is_global_is_not_enough() -> None:
    """The cases this module exists for: Python calls these global (or not private)."""
    for addr in ("64:ff9b::a9fe:a9fe", "2002:7f00:1::1", "100.64.0.1"):
        ip = ipaddress.ip_address(addr)
        assert not is_globally_routable(ip)
    assert embedded_ipv4(ipaddress.ip_address("64:ff9b::a9fe:a9fe")) == [
        ipaddress.ip_address("169.254.169.254")]


# -- patterns -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", [
    "", " ", "*", "**", "*.com", "**.com", "*.", "a*.b.com", "*a.b.com", "b.*.com", "***.b.com",
    "*.*.b.com", "example.com:0", "example.com:99999", "example.com:x", "exa mple.com",
    "10.1.2.3/24", "10.1.2.0/33", "[10.0.0.1]", "[::1", "*.10.0.0.1", "127.1", "host:80:80",
    "fe80::1%eth0",
])
def test_refused_patterns(text: str) -> None:
    with pytest.raises(BadPattern):
        parse_pattern(text)


@pytest.mark.parametrize("text,kind,port", [
    ("Example.COM.", "exact", None), ("*.example.com", "sub", None),
    ("**.example.com:8443", "tree", 8443), ("10.0.0.0/8", "net", None),
    ("10.1.2.0/24:443", "net", 443), ("[::1]:8000", "net", 8000), ("fd00::/8", "net", None),
    ("[fd00::/8]:53", "net", 53), ("127.0.0.1:8000", "net", 8000), ("тест.рф", "exact", None),
])
def test_patterns(text: str, kind: str, port: int | None) -> None:
    p = parse_pattern(text)
    assert (p.kind, p.port) == (kind, port)


def test_pattern_matching_on_label_boundaries() -> None:
    sub, tree, exact = (parse_pattern(t) for t in ("*.b.com", "**.b.com", "b.com"))
    assert sub.matches_host("a.b.com") and sub.matches_host("x.a.b.com")
    assert not sub.matches_host("b.com") and not sub.matches_host("ab.com")
    assert tree.matches_host("b.com") and tree.matches_host("a.b.com")
    assert not tree.matches_host("notb.com") and not exact.matches_host("a.b.com")


def test_rules_errors_name_the_source() -> None:
    with pytest.raises(BadPattern, match=r"config.toml:7.*\*\.com"):
        NetworkRules(allow=[("*.com", "config.toml:7")])
    with pytest.raises(BadPattern):
        NetworkRules(default="maybe")  # type: ignore[arg-type]
    with pytest.raises(BadPattern):
        NetworkRules(ports=[0])


def test_port_scope_is_asymmetric() -> None:
    r = NetworkRules(allow=["a.com", "10.0.0.0/8"], deny=["b.com"], default="ask", ports=[443])
    g = [ipaddress.ip_address("8.8.8.8")]
    assert r.decide("a.com", 443, g).action == "allow"
    assert r.decide("a.com", 80, g).action == "ask"
    assert r.decide("b.com", 1, g).action == "deny"
    assert r.decide("10.2.3.4", 443, None).action == "allow"
    assert r.decide("10.2.3.4", 22, None).action == "deny"  # private and not covered there


def test_ip_deny_rules_see_through_wrappers() -> None:
    r = NetworkRules(allow=["**.cdn.com"], deny=["1.2.3.4"], default="allow")
    for addr in ("1.2.3.4", "::ffff:1.2.3.4", "64:ff9b::102:304", "2002:102:304::1"):
        got = r.decide("x.cdn.com", 443, [ipaddress.ip_address(addr)])
        assert got.action == "deny" and got.rule == "1.2.3.4", addr


def test_ip_allow_rule_opens_a_resolved_private_name() -> None:
    r = NetworkRules(allow=["10.0.0.5:8000"], default="deny")
    private = [ipaddress.ip_address("10.0.0.5")]
    assert r.decide("model.lan", 8000, private).action == "allow"
    assert r.decide("model.lan", 8001, private).basis == "not-routable"


def test_suggestions() -> None:
    r = NetworkRules(ports=[80, 443])
    assert r.suggestion("a.com", 443) == "a.com"
    assert r.suggestion("a.com", 22) == "a.com:22"
    assert r.suggestion("8.8.8.8", 443) == "8.8.8.8:443"
    assert r.suggestion("2606:4700::1", 443) == "[2606:4700::1]:443"
    assert parse_pattern(r.suggestion("2606:4700::1", 443)).port == 443


# -- property: no spelling bypasses a deny rule ---------------------------------------------------

# IDNA (UTS 46) reserves "--" in a label's 3rd and 4th place for A-labels (xn--): such a name is
# refused as a host, rightly, so the generator does not make them.
_label = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,10}[a-z0-9])?", fullmatch=True).filter(
    lambda s: s[2:4] != "--")
_tld = st.from_regex(r"[a-z]([a-z0-9-]{0,8}[a-z])?", fullmatch=True).filter(  # never numeric
    lambda s: s[2:4] != "--")
_host = st.builds(lambda labels, tld: ".".join([*labels, tld]),
                  st.lists(_label, min_size=1, max_size=3), _tld)


@st.composite
def _spelling(draw: st.DrawFn, host: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(host), max_size=len(host)))
    text = "".join(c.upper() if f else c for c, f in zip(host, flips, strict=True))
    dots = draw(st.sampled_from([".", "。", "．"]))  # ASCII, ideographic, full-width dot
    text = text.replace(".", dots) if draw(st.booleans()) else text
    if draw(st.booleans()):
        text += "."
    return text


@settings(max_examples=300)
@given(data=st.data(), host=_host, parent=_host)
def test_no_spelling_bypasses_a_deny(data: st.DataObject, host: str, parent: str) -> None:
    full = f"{host}.{parent}"
    rules = NetworkRules(allow=[f"**.{parent}", full], deny=[full, f"**.x.{parent}"],
                         default="allow")
    spelled = data.draw(_spelling(full))
    target = parse_connect_target(f"{spelled}:443")
    assert target.host == full
    assert rules.decide(target.host, 443, None).action == "deny"
    assert rules.decide(target.host, 443, [ipaddress.ip_address("8.8.8.8")]).action == "deny"
    deep = parse_connect_target(data.draw(_spelling(f"a.x.{parent}")) + ":8080")
    assert rules.decide(deep.host, deep.port, None).action == "deny"


@settings(max_examples=200)
@given(data=st.data(), host=_host)
def test_spelling_of_a_deny_pattern_does_not_matter(data: st.DataObject, host: str) -> None:
    full = f"{host}.com"
    rules = NetworkRules(deny=[data.draw(_spelling(full))], default="allow")
    assert rules.decide(full, 443, None).action == "deny"


@settings(max_examples=500)
@given(st.text(alphabet="aAzZ09-.", min_size=1, max_size=20))
def test_ascii_fast_path_agrees_with_uts46(text: str) -> None:
    """Plain ASCII skips the idna package; it must never accept what idna refuses, nor
    spell a host differently."""
    import idna

    try:
        got = normalise_host(text)
    except BadTarget:
        return
    reference = idna.encode(text, uts46=True).decode().lower()
    assert got == reference.removesuffix(".")
