"""Routing: matchers, first match wins, capability skipping, strategies, bridge.route()."""

from __future__ import annotations

import random
import textwrap
import threading
from collections import Counter
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import pytest

import smsbridge
from smsbridge.capabilities import Capabilities
from smsbridge.config import Config, RouteConfig, load_yaml, parse_config
from smsbridge.errors import InvalidRecipient, RoutingError
from smsbridge.message import OutgoingMessage
from smsbridge.phone import Phone
from smsbridge.phones.dummy import DummyPhone
from smsbridge.router import RouteDecision, Router

CI = "+2250701020304"
SN = "+221771234567"
FR = "+33612345678"
US = "+12025550123"


class PlainPhone(DummyPhone):
    """A dummy with the capabilities of a basic SMS-only provider."""

    capabilities: ClassVar[Capabilities] = DummyPhone.capabilities.replace(
        mms_send=False, flash=False, sender_name=False, max_segments=2
    )


def config(text: str) -> Config:
    return parse_config(load_yaml(textwrap.dedent(text), "routes.yaml"), file="routes.yaml")


def router(
    text: str, phones: Mapping[str, Phone] | None = None, seed: int = 1
) -> tuple[Router, Config]:
    cfg = config(text)
    built: dict[str, Phone] = dict(phones or {})
    for name, spec in cfg.phones.items():
        built.setdefault(name, DummyPhone(name, dict(spec.options)))
    return Router(cfg.routes, built, rng=random.Random(seed)), cfg


def order(r: Router, to: str, **fields: Any) -> list[str]:
    message = OutgoingMessage(to=to, body=fields.pop("body", "hello"), **fields)
    return list(r.decide(message, to).phones)


PHONES = """
phones:
  a: {plugin: dummy}
  b: {plugin: dummy}
  c: {plugin: dummy}
  d: {plugin: dummy}
"""


# ---------------------------------------------------------------------- matching
def test_first_matching_route_wins_in_file_order() -> None:
    r, _ = router(
        PHONES
        + """
routes:
  - match: {countries: [CI]}
    phones: [a]
  - match: {prefixes: ["+225"]}
    phones: [b]
  - phones: [c]
"""
    )
    assert order(r, CI) == ["a"]  # both of the first two match: the first wins
    assert order(r, SN) == ["c"]


def test_a_default_route_first_swallows_everything() -> None:
    r, _ = router(
        PHONES + "routes:\n  - phones: [d]\n  - {match: {countries: [CI]}, phones: [a]}\n"
    )
    assert order(r, CI) == ["d"]


@pytest.mark.parametrize(
    ("match", "hits", "misses"),
    [
        ("recipients: ['+225 07 01 02 03 04']", [CI], [SN, "+2250701020305"]),
        ("recipients: ['0701020304']", [CI], [SN]),  # national, via default_region
        ("prefixes: ['+2250701']", [CI], ["+2250501020304", SN]),
        ("prefixes: ['00221', '33']", [SN, FR], [CI, US]),
        ("countries: [CI, SN]", [CI, SN], [FR, US]),
        ("countries: [CIV, SEN]", [CI, SN], [FR, US]),  # alpha-3
        ("countries: [civ, fr]", [CI, FR], [SN]),
        ("countries: US", [US], [CI]),
    ],
)
def test_number_matchers(match: str, hits: list[str], misses: list[str]) -> None:
    r, _ = router(
        "default_region: CI\n" + PHONES + f"routes:\n  - match: {{{match}}}\n    phones: [a]\n"
        "  - phones: [b]\n"
    )
    for to in hits:
        assert order(r, to) == ["a"], to
    for to in misses:
        assert order(r, to) == ["b"], to


def test_tag_matcher() -> None:
    r, _ = router(
        PHONES + "routes:\n  - {match: {tags: [otp, alert]}, phones: [a]}\n  - phones: [b]\n"
    )
    assert order(r, CI, tag="otp") == ["a"]
    assert order(r, CI, tag="alert") == ["a"]
    assert order(r, CI, tag="marketing") == ["b"]
    assert order(r, CI) == ["b"]  # no tag


def test_matchers_of_one_route_must_all_hold() -> None:
    r, _ = router(
        PHONES
        + """
routes:
  - match: {countries: [CI], tags: [otp], prefixes: ["+22507"]}
    phones: [a]
  - match: {countries: [CI], tags: [otp]}
    phones: [b]
  - phones: [c]
"""
    )
    assert order(r, CI, tag="otp") == ["a"]
    assert order(r, "+2250501020304", tag="otp") == ["b"]  # prefix fails
    assert order(r, CI, tag="news") == ["c"]  # tag fails
    assert order(r, SN, tag="otp") == ["c"]  # country fails


def test_matching_route_is_exposed() -> None:
    r, cfg = router(
        PHONES + "routes:\n  - {match: {countries: [SN]}, phones: [a], name: senegal}\n"
    )
    assert r.matching_route(OutgoingMessage(to=SN, body="x"), SN) is cfg.routes[0]
    assert r.matching_route(OutgoingMessage(to=CI, body="x"), CI) is None


def test_no_routes_means_every_phone_in_file_order() -> None:
    r, _ = router(PHONES)
    decision = r.decide(OutgoingMessage(to=CI, body="x"), CI)
    assert decision == RouteDecision(("a", "b", "c", "d"), None, {})
    assert decision.resend_ambiguous is False


def test_no_matching_route_is_a_routing_error() -> None:
    r, _ = router(PHONES + "routes:\n  - {match: {countries: [SN]}, phones: [a]}\n")
    with pytest.raises(RoutingError) as caught:
        order(r, CI, tag="otp")
    assert CI in str(caught.value) and "'otp'" in str(caught.value)
    assert "default route" in str(caught.value)


def test_resend_ambiguous_comes_from_the_route() -> None:
    r, _ = router(PHONES + "routes:\n  - {phones: [a], resend_ambiguous: true}\n")
    assert r.decide(OutgoingMessage(to=CI, body="x"), CI).resend_ambiguous is True


# ---------------------------------------------------------------------- capabilities
def plain_router() -> Router:
    r, _ = router(
        PHONES
        + "  plain: {plugin: dummy}\n  senegal: {plugin: dummy, countries: [SEN]}\n"
        + "routes:\n  - phones: [plain, senegal, a]\n",
        phones={"plain": PlainPhone("plain")},
    )
    return r


@pytest.mark.parametrize(
    ("fields", "skipped", "reason"),
    [
        ({"media": ("https://example.com/a.png",)}, "plain", "no mms_send"),
        ({"flash": True}, "plain", "flash"),
        ({"sender": "MonService"}, "plain", "sender name"),
        ({"body": "x" * (153 * 2 + 1)}, "plain", "3 gsm7 segments"),
    ],
)
def test_phones_that_cannot_carry_the_message_are_skipped_with_reasons(
    fields: dict[str, Any], skipped: str, reason: str
) -> None:
    r = plain_router()
    body = fields.pop("body", "hello")
    decision = r.decide(OutgoingMessage(to=SN, body=body, **fields), SN)
    assert decision.phones == ("senegal", "a")
    assert list(decision.skipped) == [skipped]
    assert reason in decision.skipped[skipped]


def test_country_restricted_phone_is_skipped_for_other_countries() -> None:
    decision = plain_router().decide(OutgoingMessage(to=CI, body="hi"), CI)
    assert decision.phones == ("plain", "a")
    assert "does not serve CI" in decision.skipped["senegal"]
    assert "serves SN" in decision.skipped["senegal"]


def test_a_number_sender_is_fine_on_a_phone_without_sender_names() -> None:
    decision = plain_router().decide(OutgoingMessage(to=SN, body="hi", sender="+33612345678"), SN)
    assert decision.phones == ("plain", "senegal", "a")


def test_when_no_phone_can_carry_it_the_error_lists_every_reason() -> None:
    r, _ = router(
        PHONES
        + "  plain: {plugin: dummy}\n  senegal: {plugin: dummy, countries: [SN]}\n"
        + "routes:\n  - phones: [plain, senegal]\n",
        phones={"plain": PlainPhone("plain")},
    )
    with pytest.raises(RoutingError) as caught:
        order(r, CI, flash=True)
    text = str(caught.value)
    assert "route at line" in text
    assert "plain: phone 'plain' cannot send flash" in text
    assert "senegal: phone 'senegal' does not serve CI" in text


# ---------------------------------------------------------------------- strategies
def test_failover_keeps_the_written_order() -> None:
    r, _ = router(PHONES + "routes:\n  - phones: [c, a, b]\n")
    assert [order(r, CI) for _ in range(3)] == [["c", "a", "b"]] * 3


def test_round_robin_rotates_the_first_phone() -> None:
    r, _ = router(PHONES + "routes:\n  - {phones: [a, b, c], strategy: round_robin}\n")
    assert [order(r, CI) for _ in range(4)] == [
        ["a", "b", "c"],
        ["b", "c", "a"],
        ["c", "a", "b"],
        ["a", "b", "c"],
    ]


def test_round_robin_has_one_turn_per_route() -> None:
    r, _ = router(
        PHONES
        + """
routes:
  - {match: {countries: [SN]}, phones: [a, b], strategy: round_robin}
  - {phones: [c, d], strategy: round_robin}
"""
    )
    assert order(r, SN)[0] == "a"
    assert order(r, CI)[0] == "c"
    assert order(r, SN)[0] == "b"
    assert order(r, CI)[0] == "d"


def test_round_robin_is_fair_across_threads() -> None:
    r, _ = router(PHONES + "routes:\n  - {phones: [a, b, c, d], strategy: round_robin}\n")
    firsts: list[str] = []
    lock = threading.Lock()

    def work() -> None:
        for _ in range(100):
            first = order(r, CI)[0]
            with lock:
                firsts.append(first)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Counter(firsts) == {"a": 200, "b": 200, "c": 200, "d": 200}


def test_random_is_a_seeded_shuffle() -> None:
    r, _ = router(PHONES + "routes:\n  - {phones: [a, b, c, d], strategy: random}\n", seed=1)
    got = [order(r, CI) for _ in range(50)]
    reference = random.Random(1)
    expected = []
    for _ in range(50):
        phones = ["a", "b", "c", "d"]
        reference.shuffle(phones)
        expected.append(phones)
    assert got == expected
    assert all(sorted(o) == ["a", "b", "c", "d"] for o in got)
    assert len({tuple(o) for o in got}) > 10  # really shuffled
    r2, _ = router(PHONES + "routes:\n  - {phones: [a, b, c, d], strategy: random}\n", seed=1)
    assert [order(r2, CI) for _ in range(50)] == got  # reproducible from the seed


def test_weighted_order_follows_the_weights_and_zero_weights_go_last() -> None:
    r, _ = router(
        PHONES
        + """
routes:
  - phones: [c, a, b, d]
    strategy: weighted
    weights: {a: 3, b: 1, c: 0}
""",
        seed=7,
    )
    draws = 4000
    firsts: Counter[str] = Counter()
    for _ in range(draws):
        got = order(r, CI)
        assert sorted(got[:2]) == ["a", "b"]  # positive weights first...
        assert got[2:] == ["c", "d"]  # ...then zero (c) and missing (d) weights, as written
        firsts[got[0]] += 1
    share = firsts["a"] / draws
    assert 0.72 < share < 0.78, share  # expected 3 / (3 + 1); ±3 % is > 4 standard errors


def test_weighted_with_every_weight_zero_is_the_written_order() -> None:
    r, _ = router(PHONES + "routes:\n  - {phones: [b, a], strategy: weighted, weights: {a: 0}}\n")
    assert order(r, CI) == ["b", "a"]


def test_weighted_ignores_weights_only_python_could_give() -> None:
    route = RouteConfig(
        phones=("a", "b", "c"),
        strategy="weighted",
        weights={"a": float("nan"), "b": -2.0, "c": 1.0},
    )
    phones = {n: DummyPhone(n) for n in "abc"}
    r = Router([route], phones, rng=random.Random(3))
    for _ in range(20):
        assert order(r, CI) == ["c", "a", "b"]


@pytest.mark.parametrize("strategy", ["round_robin", "random", "weighted"])
def test_peek_answers_for_the_next_message_without_moving_the_state(strategy: str) -> None:
    r, _ = router(
        PHONES
        + f"routes:\n  - {{phones: [a, b, c, d], strategy: {strategy}"
        + (", weights: {a: 1, b: 1, c: 1, d: 1}" if strategy == "weighted" else "")
        + "}\n"
    )
    message = OutgoingMessage(to=CI, body="x")
    for _ in range(10):
        peeked = [r.decide(message, CI, peek=True).phones for _ in range(3)]
        assert peeked[0] == peeked[1] == peeked[2]
        assert r.decide(message, CI).phones == peeked[0]


# ---------------------------------------------------------------------- bridge.route()
@pytest.fixture
def bridge() -> Iterator[smsbridge.Bridge]:
    cfg = config(
        """
        default_region: CI
        phones:
          plain: {plugin: dummy}
          ci: {plugin: dummy, countries: [CIV]}
          world: {plugin: dummy}
        routes:
          - match: {countries: [CI]}
            phones: [plain, ci, world]
          - phones: [world]
        """
    )
    phones: dict[str, Phone] = {
        "plain": PlainPhone("plain"),
        "ci": DummyPhone("ci", {"countries": ["CIV"]}),
        "world": DummyPhone("world"),
    }
    with smsbridge.Bridge(phones, config=cfg) as b:
        yield b


def sent(bridge: smsbridge.Bridge) -> int:
    return sum(len(p.sent) for p in bridge.phones.values() if isinstance(p, DummyPhone))


def test_bridge_route_returns_names_without_sending(bridge: smsbridge.Bridge) -> None:
    assert bridge.route("07 01 02 03 04") == ["plain", "ci", "world"]  # national, CI
    assert bridge.route(CI, "x", media=("https://example.com/a.png",)) == ["ci", "world"]
    assert bridge.route(CI, "x", flash=True, sender="Shop") == ["ci", "world"]
    assert bridge.route(FR) == ["world"]
    assert bridge.route(FR, phone="plain") == ["plain"]  # explicit phone bypasses routes
    assert sent(bridge) == 0
    result = bridge.send(CI, "now for real")
    assert result.phone == "plain" and sent(bridge) == 1


def test_bridge_route_refuses_bad_input_like_send(bridge: smsbridge.Bridge) -> None:
    with pytest.raises(InvalidRecipient):
        bridge.route("+225 07")
    with pytest.raises(RoutingError, match="unknown phone 'nope'"):
        bridge.route(CI, phone="nope")
    assert sent(bridge) == 0


@pytest.mark.parametrize(
    ("route", "problem"),
    [
        (RouteConfig(phones=("a",), strategy="fastest"), "unknown strategy 'fastest'"),
        (RouteConfig(phones=()), "has no phones"),
        (RouteConfig(phones=("a", "zz"), line=9), "route at line 9 names unknown phone(s) zz"),
    ],
)
def test_routes_built_in_python_are_checked_up_front(route: RouteConfig, problem: str) -> None:
    from smsbridge.errors import ConfigError

    with pytest.raises(ConfigError) as caught:
        Router([route], {"a": DummyPhone("a")})
    assert problem in str(caught.value)
