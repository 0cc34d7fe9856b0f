"""Inbound keyword actions: first-word matching (case, accents, punctuation), patterns,
handler order, reply() through the receiving phone, configured auto-replies."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest

import smsbridge
from smsbridge.config import load_yaml
from smsbridge.keywords import (
    REPLY_TAG,
    KeywordMessage,
    KeywordRouter,
    install,
    keywords_for,
    normalize_text,
    on_keyword,
    on_match,
    parse_auto_replies,
    words,
)
from smsbridge.phones.dummy import DummyPhone
from smsbridge.templates import Template, TemplateLibrary
from smsbridge.templates import install as install_templates

SENDER = "+2250701020304"


def incoming(body: str, phone: str = "in") -> smsbridge.IncomingMessage:
    return smsbridge.IncomingMessage(
        phone=phone, sender=SENDER, recipient="+2250500000000", body=body
    )


@pytest.fixture
def bridge() -> Iterator[smsbridge.Bridge]:
    phones = {
        "in": DummyPhone("in", {"delivery": "none"}),
        "out": DummyPhone("out", {"delivery": "none"}),
        "broken": DummyPhone("broken", {"delivery": "none", "fail_all": True, "retries": 0}),
    }
    with smsbridge.Bridge(phones) as b:
        yield b


def sent(bridge: smsbridge.Bridge, name: str) -> list[dict[str, Any]]:
    phone = bridge.phones[name]
    assert isinstance(phone, DummyPhone)
    return phone.sent


# ---------------------------------------------------------------------- normalisation
def test_normalize_text_and_words() -> None:
    assert normalize_text("Arrêt") == "arret"
    assert normalize_text("DÉSABONNER") == "desabonner"
    assert words("  Stop-SMS, merci !") == ["stop", "sms", "merci"]
    assert words("ﬁn") == ["fin"]


@pytest.mark.parametrize(
    "body",
    ["ARRET", "arret", "Arrêt", "ARRÊT!", "  arrêt  merci", "Arre\u0302t", "arret.", "«Arrêt»"],
)
def test_first_word_matches_case_and_accent_insensitively(body: str) -> None:
    router = KeywordRouter()
    seen: list[KeywordMessage] = []
    router.on_keyword("ARRÊT", seen.append)
    assert router(incoming(body)) == 1
    assert seen[0].keyword == "ARRÊT"


@pytest.mark.parametrize("body", ["arrete", "please arret", "", "   ", "arretez-vous", "🙂"])
def test_other_bodies_do_not_match(body: str) -> None:
    router = KeywordRouter()
    router.on_keyword("ARRET", lambda m: None)
    assert router(incoming(body)) == 0


def test_multi_word_keywords_and_args() -> None:
    router = KeywordRouter()
    seen: list[KeywordMessage] = []
    router.on_keyword(["STOP", "STOP SMS"], seen.append)
    router(incoming("Stop sms pub svp"))
    router(incoming("stop, please"))
    router(incoming("STOP"))
    assert [(m.keyword, m.args) for m in seen] == [
        ("STOP SMS", "pub svp"),
        ("STOP", "please"),
        ("STOP", ""),
    ]


def test_patterns() -> None:
    router = KeywordRouter()
    seen: list[KeywordMessage] = []
    router.on_match(r"^rdv\s+(\d+)\s*h", seen.append)
    assert router(incoming("RDV 14h demain")) == 1
    assert router(incoming("mon rdv 14h")) == 0
    assert seen[0].pattern_match is not None and seen[0].pattern_match.group(1) == "14"
    assert seen[0].args == "demain" and seen[0].keyword is None
    import re

    strict = KeywordRouter()
    strict.on_match(re.compile(r"^CODE\d+$"), seen.append)  # flags as given
    assert strict(incoming("code42")) == 0 and strict(incoming("CODE42")) == 1


def test_every_match_runs_by_priority_then_order() -> None:
    router = KeywordRouter()
    order: list[str] = []
    router.on_keyword("INFO", lambda m: order.append("first"))
    router.on_match("^info", lambda m: order.append("pattern"))

    @router.on_keyword(["INFO", "INFOS"], priority=1)
    def urgent(message: KeywordMessage) -> None:
        order.append("priority")

    router.on_keyword("HELP", lambda m: order.append("never"))
    assert router(incoming("info horaires")) == 3
    assert order == ["priority", "first", "pattern"]
    assert router.remove(urgent) == 1 and router(incoming("info")) == 2
    assert [d["keywords"] for d in router.describe()] == [["INFO"], None, ["HELP"]]


def test_bad_keywords() -> None:
    with pytest.raises(ValueError, match="no letters"):
        KeywordRouter().on_keyword("!!", lambda m: None)
    with pytest.raises(ValueError, match="at least one"):
        KeywordRouter().on_keyword([], lambda m: None)


# ---------------------------------------------------------------------- through the bridge
def test_handlers_run_for_webhook_inbound_and_reply_through_the_receiving_phone(
    bridge: smsbridge.Bridge,
) -> None:
    got: list[KeywordMessage] = []

    @on_keyword(bridge, "SOLDE")
    def balance(message: KeywordMessage) -> None:
        got.append(message)
        result = message.reply(f"Votre solde : 1 000 FCFA ({message.args or 'compte'})")
        assert result.phone == "in"

    phone = bridge.phones["in"]
    assert isinstance(phone, DummyPhone)
    response = phone.simulate_inbound(SENDER, "solde épargne", recipient="+2250500000000")
    assert response.status == 200
    assert got and got[0].sender == SENDER and got[0].phone == "in"
    assert isinstance(got[0], smsbridge.IncomingMessage)
    assert "bridge" not in got[0].to_dict()
    assert sent(bridge, "in")[-1]["body"] == "Votre solde : 1 000 FCFA (épargne)"
    assert sent(bridge, "in")[-1]["to"] == SENDER and sent(bridge, "out") == []


def test_on_match_through_the_bridge_and_failing_handler_gives_500(
    bridge: smsbridge.Bridge,
) -> None:
    def boom(message: KeywordMessage) -> None:
        raise RuntimeError("handler bug")

    on_match(bridge, r"^crash\b", boom)
    phone = bridge.phones["in"]
    assert isinstance(phone, DummyPhone)
    assert phone.simulate_inbound(SENDER, "crash now").status == 500  # provider retries
    assert phone.simulate_inbound(SENDER, "no crash").status == 200


def test_auto_replies_from_config(
    bridge: smsbridge.Bridge, caplog: pytest.LogCaptureFixture
) -> None:
    install_templates(
        bridge,
        TemplateLibrary(
            [
                Template(
                    "help",
                    {
                        "en": "Reply STOP to opt out. {{ keyword }}",
                        "fr": "Répondez STOP pour vous désabonner.",
                    },
                ),
            ]
        ),
    )
    node = load_yaml(
        "keywords:\n"
        "  HELP: help\n"
        "  AIDE: {template: help, locale: fr}\n"
        "  INFO: {text: 'Ouvert de 8h à 18h'}\n",
        "smsbridge.yaml",
    )["keywords"]
    router = install(bridge, parse_auto_replies(node, file="smsbridge.yaml"))
    assert keywords_for(bridge) is router
    phone = bridge.phones["in"]
    assert isinstance(phone, DummyPhone)
    phone.simulate_inbound(SENDER, "help")
    phone.simulate_inbound(SENDER, "Aide !")
    phone.simulate_inbound(SENDER, "infos")  # INFOS is not INFO
    phone.simulate_inbound(SENDER, "info")
    bodies = [(m["body"], m["tag"]) for m in sent(bridge, "in")]
    assert bodies == [
        ("Reply STOP to opt out. HELP", REPLY_TAG),
        ("Répondez STOP pour vous désabonner.", REPLY_TAG),
        ("Ouvert de 8h à 18h", REPLY_TAG),
    ]
    # A reply that cannot be sent is logged; the webhook still answers 200.
    broken = bridge.phones["broken"]
    assert isinstance(broken, DummyPhone)
    with caplog.at_level(logging.WARNING, logger="smsbridge.keywords"):
        assert broken.simulate_inbound(SENDER, "info").status == 200
    assert "auto-reply to INFO on broken failed" in caplog.text


@pytest.mark.parametrize(
    ("yaml", "line", "key", "message"),
    [
        ("keywords:\n  HELP: {template: a, text: b}\n", 2, "keywords.HELP", "exactly one"),
        (
            "keywords:\n  HELP: {templat: a}\n",
            2,
            "keywords.HELP.templat",
            "did you mean 'template'",
        ),
        ("keywords:\n  '!!': help\n", 2, "keywords.!!", "letters or digits"),
        ("keywords:\n  HELP: [a]\n", 2, "keywords.HELP", "template slug or a mapping"),
        ("keywords: [HELP]\n", 1, "keywords", "mapping"),
    ],
)
def test_auto_reply_config_errors(yaml: str, line: int, key: str, message: str) -> None:
    node = load_yaml(yaml, "smsbridge.yaml")["keywords"]
    with pytest.raises(smsbridge.ConfigError) as info:
        parse_auto_replies(node, file="smsbridge.yaml")
    assert (info.value.line, info.value.key) == (line, key)
    assert message in str(info.value)


def test_keyword_message_without_bridge_cannot_reply() -> None:
    message = KeywordMessage.of(incoming("x"))
    with pytest.raises(RuntimeError, match="not attached"):
        message.reply("hi")


# ---------------------------------------------------------------------- through the Bridge
def test_wired_bridge_methods_and_yaml_auto_replies() -> None:
    from smsbridge.config import parse_config

    text = (
        "phones:\n  in: {plugin: dummy, delivery: none}\n  out: {plugin: dummy, delivery: none}\n"
        "routes:\n  - phones: [out]\n"
        "keywords:\n  INFO: {text: 'Ouvert 8h-18h'}\n"
    )
    config = parse_config(load_yaml(text, "smsbridge.yaml"), file="smsbridge.yaml")
    with smsbridge.Bridge.from_config(config) as bridge:

        @bridge.on_keyword("SOLDE")  # type: ignore[attr-defined, misc]
        def balance(message: KeywordMessage) -> None:
            message.reply("1 000 FCFA")

        @bridge.on_receive(match=r"^rdv (\d+)")  # type: ignore[call-arg, misc]
        def book(message: KeywordMessage) -> None:
            message.reply(f"RDV {message.pattern_match.group(1)}h")  # type: ignore[union-attr]

        def plain(message: smsbridge.IncomingMessage) -> None:
            if message.body == "ping":
                message.reply("pong")  # type: ignore[attr-defined]

        bridge.on_receive(plain)
        phone = bridge.phones["in"]
        assert isinstance(phone, DummyPhone)
        for body in ("info", "Solde", "RDV 9", "ping"):
            assert phone.simulate_inbound(SENDER, body).status == 200
        assert [m["body"] for m in phone.sent] == ["Ouvert 8h-18h", "1 000 FCFA", "RDV 9h", "pong"]
        assert sent(bridge, "out") == []
