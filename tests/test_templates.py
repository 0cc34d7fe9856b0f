"""Templates: YAML and folder loading, locale fallback, strict variables, the sandbox,
sending through the bridge, the shipped defaults and the ``templates`` command."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import smsbridge
from smsbridge.cli import main
from smsbridge.config import load_yaml
from smsbridge.encoding import count_segments
from smsbridge.phone import PreparedMessage, Submission
from smsbridge.phones.dummy import DummyPhone
from smsbridge.templates import (
    MissingVariable,
    Template,
    TemplateError,
    TemplateLibrary,
    UnknownTemplate,
    install,
    locale_chain,
    normalize_locale,
    send_template,
)

YAML = """\
templates:
  default_locale: en
  welcome:
    fr: "Bienvenue {{ name }} !"
    fr_CI: "Akwaba {{ name }} !"
    en: "Welcome {{ name }}!"
    default_locale: fr
  reminder:
    en: "Reminder: {{ what }}"
    fr: "Rappel : {{ what }}"
  plain: "Code {{ code }}"
  only-fr:
    fr: "Seulement en français"
"""


def library(text: str = YAML, file: str = "smsbridge.yaml") -> TemplateLibrary:
    return TemplateLibrary.from_config(load_yaml(text, file)["templates"], file=file)


class RecordingPhone(DummyPhone):
    """A dummy phone that keeps every prepared message (metadata included)."""

    def __init__(self, name: str, options: Any = None, **kw: Any) -> None:
        super().__init__(name, options, **kw)
        self.prepared: list[PreparedMessage] = []

    def submit(self, message: PreparedMessage) -> Submission:
        self.prepared.append(message)
        return super().submit(message)


@pytest.fixture
def bridge() -> Iterator[smsbridge.Bridge]:
    phone = RecordingPhone("p", {"delivery": "none"})
    with smsbridge.Bridge({"p": phone}) as b:
        install(b, load_yaml(YAML, "smsbridge.yaml")["templates"])
        yield b


def phone_of(bridge: smsbridge.Bridge) -> RecordingPhone:
    phone = bridge.phones["p"]
    assert isinstance(phone, RecordingPhone)
    return phone


# ---------------------------------------------------------------------- locales
@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("fr-ci", "fr_CI"),
        ("FR", "fr"),
        ("en_gb", "en_GB"),
        ("zh-hant-tw", "zh_Hant_TW"),
        ("es-419", "es_419"),
    ],
)
def test_normalize_locale(given: str, expected: str) -> None:
    assert normalize_locale(given) == expected


def test_locale_chain() -> None:
    assert locale_chain("fr-CI") == ["fr_CI", "fr"]
    assert locale_chain(None) == []
    with pytest.raises(ValueError, match="not a locale"):
        locale_chain("français")


@pytest.mark.parametrize(
    ("slug", "asked", "used"),
    [
        ("welcome", "fr_CI", "fr_CI"),
        ("welcome", "fr_SN", "fr"),  # fr_SN -> fr
        ("welcome", "en-GB", "en"),
        ("welcome", "de", "fr"),  # the template's default_locale
        ("welcome", None, "fr"),
        ("reminder", "de", "en"),  # no template default: the library's default_locale
        ("reminder", None, "en"),
        ("plain", "fr_CI", "default"),  # one body for every locale
        ("only-fr", "en", "fr"),  # last resort: the template's only body
    ],
)
def test_locale_fallback(slug: str, asked: str | None, used: str) -> None:
    assert library().resolve(slug, asked) == used


def test_render_reports_the_locale_used() -> None:
    rendered = library().render("welcome", {"name": "Awa"}, "fr_CI")
    assert (rendered.text, rendered.locale, rendered.slug) == ("Akwaba Awa !", "fr_CI", "welcome")
    assert library().render("welcome", {"name": "Awa"}, "fr_BE").text == "Bienvenue Awa !"


# ---------------------------------------------------------------------- variables
def test_missing_variable_names_it() -> None:
    with pytest.raises(MissingVariable, match="'name'") as info:
        library().render("welcome", {"nom": "Awa"}, "fr")
    assert info.value.variable == "name"
    assert (info.value.slug, info.value.locale) == ("welcome", "fr")
    assert isinstance(info.value, smsbridge.MessageError)


def test_missing_attribute_and_defaults() -> None:
    lib = TemplateLibrary(
        [
            Template("a", {"en": "{{ user.name }}"}),
            Template(
                "b", {"en": "Hi {{ name | default('there') }}{% if x is defined %}!{% endif %}"}
            ),
        ]
    )
    with pytest.raises(MissingVariable) as info:
        lib.render("a", {"user": {"id": 1}})
    assert info.value.variable == "name"
    assert lib.render("b").text == "Hi there"
    assert lib.render("b", {"x": 1}).text == "Hi there!"


def test_unknown_template() -> None:
    with pytest.raises(UnknownTemplate, match=r"'nope'.*verification"):
        library().render("nope", {})


def test_variables_listed() -> None:
    assert library().variables("welcome") == ["name"]
    assert library().variables("verification") == ["code", "greeting", "minutes", "signature"]


# ---------------------------------------------------------------------- sandbox
@pytest.mark.parametrize(
    "body",
    [
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ cycler.__init__.__globals__.os }}",
        "{{ lipsum.__globals__['os'].popen('id').read() }}",
        "{{ joiner.__init__.__globals__ }}",
        "{{ namespace.__init__.__globals__ }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}{{ c }}{% endfor %}",
        "{{ self._TemplateReference__context }}",
        "{{ items.append(1) }}",  # immutable sandbox: no mutation of the context
        "{{ data.update({'a': 1}) }}",
        "{{ 'x' * 100000 }}",  # bounded repetition
        "{{ 10 ** 100000 }}",
        "{{ range(10**9) | list }}",
        "{{ '{0.__class__}'.format(items) }}",
    ],
)
def test_sandbox_refuses_escapes(body: str) -> None:
    lib = TemplateLibrary([Template("evil", {"en": body})])
    with pytest.raises(TemplateError, match=r"sandbox|MAX_RANGE") as info:
        lib.render("evil", {"items": [1, 2], "data": {}})
    assert not isinstance(info.value, MissingVariable)


def test_user_data_is_never_template_code() -> None:
    lib = TemplateLibrary([Template("hello", {"en": "Hello {{ name }}"})])
    payload = "{{ 7*7 }}{% for x in range(3) %}x{% endfor %}{{ ''.__class__ }}"
    assert lib.render("hello", {"name": payload}).text == f"Hello {payload}"


def test_syntax_errors_are_config_errors_with_line() -> None:
    text = "templates:\n  ok: fine\n  broken:\n    en: 'Hello {{ name'\n"
    with pytest.raises(smsbridge.ConfigError) as info:
        library(text)
    err = info.value
    assert (err.file, err.line, err.key) == ("smsbridge.yaml", 3, "templates.broken")
    assert "syntax error" in str(err)


def test_bad_locale_key_is_a_config_error() -> None:
    text = "templates:\n  t:\n    en: hi\n    français: salut\n"
    with pytest.raises(smsbridge.ConfigError) as info:
        library(text)
    assert (info.value.line, info.value.key) == (4, "templates.t.français")


def test_bad_default_locale_is_a_config_error() -> None:
    text = "templates:\n  t:\n    en: hi\n    default_locale: fr\n"
    with pytest.raises(smsbridge.ConfigError, match="default_locale 'fr' has no body"):
        library(text)


# ---------------------------------------------------------------------- folders & defaults
def test_folder_templates(tmp_path: Path) -> None:
    folder = tmp_path / "sms"
    folder.mkdir()
    (folder / "promo.txt").write_text("Promo {{ pct }}%\n", encoding="utf-8")
    (folder / "promo.fr.txt").write_text("Promo de {{ pct }} %\n", encoding="utf-8")
    (folder / "promo.fr-CI.txt").write_text("Promo CI {{ pct }} %\n", encoding="utf-8")
    (folder / "verification.fr.txt").write_text("Code : {{ code }}", encoding="utf-8")
    (folder / "notes.md").write_text("ignored", encoding="utf-8")
    config = tmp_path / "smsbridge.yaml"
    text = "templates:\n  folder: sms\n  promo:\n    en: 'YAML wins {{ pct }}'\n"
    lib = TemplateLibrary.from_config(load_yaml(text, str(config))["templates"], file=str(config))
    assert lib.get("promo").source == "config"  # YAML replaces the folder's slug
    assert lib.render("verification", {"code": "1"}, "fr").text == "Code : 1"
    assert lib.get("verification").locales == ("fr",)  # replaces the built-in one
    lib2 = TemplateLibrary()
    lib2.load_folder(folder)
    assert lib2.render("promo", {"pct": 20}, "fr_CI").text == "Promo CI 20 %"
    assert lib2.render("promo", {"pct": 20}, "en").text == "Promo 20%"
    assert lib2.resolve("promo", None) == "default"


def test_folder_errors(tmp_path: Path) -> None:
    (tmp_path / "bad.not a locale.txt").write_text("x", encoding="utf-8")
    with pytest.raises(smsbridge.ConfigError, match=r"SLUG\.LOCALE\.txt"):
        TemplateLibrary().load_folder(tmp_path)
    text = "templates:\n  folder: missing-dir\n"
    with pytest.raises(smsbridge.ConfigError) as info:
        library(text, str(tmp_path / "smsbridge.yaml"))
    assert (info.value.line, info.value.key) == (2, "templates.folder")


@pytest.mark.parametrize("locale", ["en", "fr", "fr_CI", "en_NG"])
def test_shipped_verification_templates(locale: str) -> None:
    lib = TemplateLibrary()
    rendered = lib.render(
        "verification", {"code": "123456", "minutes": 10, "signature": "MonService"}, locale
    )
    assert "123456" in rendered.text and rendered.text.endswith("MonService")
    assert rendered.locale == locale[:2]
    info = count_segments(rendered.text)
    assert (info.encoding, info.segments) == ("gsm7", 1)  # one 160-character segment
    assert lib.render("verification", {"code": "1", "minutes": 5}, "fr").text.startswith(
        "Bonjour, votre code de vérification est 1."
    )
    assert lib.get("verification").source == "builtin"


# ---------------------------------------------------------------------- sending
def test_send_template_goes_through_the_bridge(bridge: smsbridge.Bridge) -> None:
    result = send_template(
        bridge, "+2250701020304", "welcome", {"name": "Awa"}, "fr_CI", tag="onboarding"
    )
    assert result.status is smsbridge.Status.queued
    prepared = phone_of(bridge).prepared[-1]
    assert prepared.body == "Akwaba Awa !" and prepared.tag == "onboarding"
    original = prepared.original
    assert original is not None
    slug = getattr(original, "template", None) or original.metadata.get("template")
    locale = getattr(original, "locale", None) or original.metadata.get("template_locale")
    assert (slug, locale) == ("welcome", "fr_CI")
    assert getattr(result, "template", slug) == "welcome"


def test_template_errors_send_nothing(bridge: smsbridge.Bridge) -> None:
    with pytest.raises(MissingVariable):
        send_template(bridge, "+2250701020304", "welcome", {}, "fr")
    with pytest.raises(UnknownTemplate):
        send_template(bridge, "+2250701020304", "nope", {})
    assert phone_of(bridge).prepared == []


def test_send_template_can_fold_accents(bridge: smsbridge.Bridge) -> None:
    install(bridge, TemplateLibrary([Template("t", {"fr": "Prêt à l’emploi, {{ n }} !"})]))
    result = send_template(bridge, "+2250701020304", "t", {"n": "Aïcha"}, fold_accents=True)
    assert phone_of(bridge).prepared[-1].body == "Pret à l'emploi, Aicha !"
    assert result.encoding == "gsm7"


def test_templates_from_bridge_config_attribute() -> None:
    class Config:
        templates = load_yaml(YAML, "x.yaml")["templates"]
        path = "x.yaml"
        default_region = None

    from smsbridge.templates import templates_for

    class FakeBridge:
        config = Config()

    fake = FakeBridge()
    assert "welcome" in templates_for(fake)
    assert templates_for(fake) is templates_for(fake)


# ---------------------------------------------------------------------- CLI
def test_templates_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "smsbridge.yaml"
    config.write_text("phones:\n  dev: {plugin: dummy}\n", encoding="utf-8")
    assert main(["--config", str(config), "templates"]) == 0
    out = capsys.readouterr().out
    assert "verification" in out and "en,fr" in out
    assert main(["--config", str(config), "--json", "templates"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["slug"] == "verification" and rows[0]["default"] == "en"
    code = main(
        [
            "--config",
            str(config),
            "templates",
            "verification",
            "--locale",
            "fr_CI",
            "--var",
            "code=4242",
            "--var",
            "minutes=5",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "votre code de vérification est 4242" in out and "1 gsm7 segment" in out
    assert main(["--config", str(config), "templates", "verification"]) == 1
    assert "missing variable 'code'" in capsys.readouterr().err


# ---------------------------------------------------------------------- through the Bridge


def test_wired_yaml_templates_bridge_method_and_cli(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "smsbridge.yaml"
    config.write_text(
        "default_region: CI\nphones:\n  dev: {plugin: dummy, delivery: none}\n" + YAML,
        encoding="utf-8",
    )
    with smsbridge.Bridge.from_yaml(config) as bridge:
        result = bridge.send_template("0701020304", "welcome", {"name": "Awa"}, "fr_CI")  # type: ignore[attr-defined]
        assert (result.template, result.locale) == ("welcome", "fr_CI")  # type: ignore[attr-defined]
        assert bridge.phones["dev"].sent[-1]["body"] == "Akwaba Awa !"  # type: ignore[attr-defined]
    args = ["--config", str(config), "--json", "send", "0701020304", "--template", "welcome"]
    assert main([*args, "--var", "name=Kofi", "--locale", "fr"]) == 0
    sent = json.loads(capsys.readouterr().out)
    assert (sent["template"], sent["locale"], sent["status"]) == ("welcome", "fr", "queued")
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "phones:\n  dev: {plugin: dummy}\ntemplates:\n  t:\n    en: '{{ x'\n", encoding="utf-8"
    )
    assert main(["--config", str(broken), "templates"]) == 2
    assert "broken.yaml:4, key 'templates.t'" in capsys.readouterr().err
