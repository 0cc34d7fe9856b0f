"""YAML configuration: every bad input is a ConfigError naming file, line and key, and
never showing a secret; interpolation; the lookup order of ``smsbridge.load()``.

Most cases go through ``smsbridge.Bridge.from_yaml(path)`` so that the whole path (file,
YAML, validation, plugin loading, the plugin's ``Options``) is exercised.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pydantic import Field, SecretStr, field_validator

import smsbridge
from smsbridge.config import (
    PhoneConfig,
    load_config,
    load_yaml,
    parse_config,
    resolve_path,
    validate_options,
)
from smsbridge.errors import ConfigError
from smsbridge.phone import PhoneOptions
from smsbridge.phones.dummy import DummyPhone

SECRET = "s3cr3t-Zq9-do-not-print"

Write = Callable[..., Path]


@pytest.fixture
def write(tmp_path: Path) -> Write:
    def _write(text: str, name: str = "smsbridge.yaml") -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return path

    return _write


def bridge_error(path: Path) -> ConfigError:
    with pytest.raises(ConfigError) as caught:
        bridge = smsbridge.Bridge.from_yaml(path)
        bridge.close()
    return caught.value


def assert_located(err: ConfigError, path: Path, line: int | None, key: str | None) -> None:
    """The error names the file, the line and the key, in its attributes and its text."""
    assert err.file == str(path)
    assert err.line == line
    assert err.key == key
    text = str(err)
    assert str(path) in text
    if line is not None:
        assert f"{path}:{line}" in text
    if key is not None:
        assert f"'{key}'" in text


# ---------------------------------------------------------------------- a good file
def test_a_valid_file_builds_a_bridge(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = write(
        """
        default_region: CIV
        webhooks:
          public_url: https://sms.example.com/
        phones:
          ci:
            plugin: dummy
            countries: [CI, SEN]
            webhook_secret: ${HOOK_SECRET}
            fail_for: [+2250700000009]
          world: {plugin: dummy, rate_limit: 5}
        routes:
          - match: {countries: [CIV, SN]}
            phones: [ci, world]
          - phones: world
        """
    )
    with smsbridge.Bridge.from_yaml(path) as bridge:
        assert list(bridge.phones) == ["ci", "world"]
        ci = bridge.phones["ci"]
        assert isinstance(ci, DummyPhone)
        assert ci.options.webhook_secret is not None
        assert ci.options.webhook_secret.get_secret_value() == SECRET
        assert SECRET not in repr(ci.options)
        assert ci.options.countries == ["CI", "SN"]
        assert ci.options.fail_for == ["+2250700000009"]  # unquoted: the '+' is kept
        assert bridge.config.default_region == "CI"
        assert bridge.config.webhooks.public_url == "https://sms.example.com"
        assert bridge.config.routes[0].match.countries == frozenset({"CI", "SN"})
        assert bridge.config.routes[1].phones == ("world",)
        assert bridge.route("0701020304") == ["ci", "world"]


# ---------------------------------------------------------------------- the file itself
def test_file_not_found_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    err = bridge_error(path)
    assert_located(err, path, None, None)
    assert "not found" in str(err)


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    err = bridge_error(tmp_path)
    assert err.file == str(tmp_path) and "cannot read config" in str(err)


@pytest.mark.parametrize(
    ("text", "line", "problem"),
    [
        ("phones:\n  dev:\n    plugin: dummy: x\n", 3, "mapping values are not allowed"),
        ("phones:\n  dev: [dummy\n  other: 1\n", 3, "expected ','"),
        ("phones:\n\tdev: {plugin: dummy}\n", 2, "'\\t'"),
        ('phones:\n  dev:\n    plugin: "dummy\n', 4, "end of stream"),
    ],
)
def test_malformed_yaml_reports_the_line(write: Write, text: str, line: int, problem: str) -> None:
    path = write(text)
    err = bridge_error(path)
    assert_located(err, path, line, None)
    assert "malformed YAML" in str(err) and problem in str(err)


@pytest.mark.parametrize("text", ["", "\n\n", "# only a comment\n", "---\n"])
def test_empty_file(write: Write, text: str) -> None:
    path = write(text) if text.strip() else _raw(write, text)
    err = bridge_error(path)
    assert_located(err, path, None, None)
    assert "empty" in str(err) and "phones" in str(err)


def _raw(write: Write, text: str) -> Path:
    path = write("x: 1")
    path.write_text(text, encoding="utf-8")
    return path


def test_mapping_keys_must_be_plain(write: Write) -> None:
    path = write("phones:\n  ? [a, b]\n  : {plugin: dummy}\n")
    err = bridge_error(path)
    assert_located(err, path, 2, None)
    assert "mapping keys must be plain strings" in str(err)


def test_a_file_that_is_not_utf8(write: Write) -> None:
    path = write("x: 1")
    path.write_bytes(b"phones:\n  dev: {plugin: dummy, outbox_file: caf\xe9}\n")
    err = bridge_error(path)
    assert_located(err, path, None, None)
    assert "cannot read config" in str(err)


@pytest.mark.parametrize(
    ("text", "line"), [("- dev\n- other\n", 1), ("just a string\n", None), ("42\n", None)]
)
def test_top_level_must_be_a_mapping(write: Write, text: str, line: int | None) -> None:
    path = write(text)
    err = bridge_error(path)
    assert_located(err, path, line, None)
    assert "top level must be a mapping" in str(err)


def test_missing_or_empty_phones_section(write: Write) -> None:
    path = write("default_region: CI\n")
    err = bridge_error(path)
    assert_located(err, path, None, "phones")
    assert "missing 'phones:'" in str(err)
    path = write("default_region: CI\nphones: {}\n")
    err = bridge_error(path)
    assert_located(err, path, 2, "phones")
    path = write("phones: [dev]\n")
    err = bridge_error(path)
    assert_located(err, path, 1, "phones")
    assert "must be a mapping" in str(err)


# ---------------------------------------------------------------------- phones
def test_phone_without_plugin(write: Write) -> None:
    path = write(
        """
        phones:
          ok: {plugin: dummy}
          dev:
            rate_limit: 5
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 3, "phones.dev.plugin")
    assert "no 'plugin:'" in str(err) and "plugin: dummy" in str(err)


@pytest.mark.parametrize("value", ["", "null", "[dummy]", "{a: 1}", "3"])
def test_plugin_must_be_a_name(write: Write, value: str) -> None:
    path = write(f"phones:\n  dev:\n    plugin: {value}\n")
    err = bridge_error(path)
    assert_located(err, path, 3, "phones.dev.plugin")
    assert "plugin must be a plugin name" in str(err)


def test_phone_that_is_not_a_mapping(write: Write) -> None:
    path = write("phones:\n  dev: dummy\n")
    err = bridge_error(path)
    assert_located(err, path, 2, "phones.dev")
    assert "a phone must be a mapping" in str(err)


def test_phone_name_with_bad_characters(write: Write) -> None:
    path = write("phones:\n  'my phone/1': {plugin: dummy}\n")
    err = bridge_error(path)
    assert_located(err, path, 2, "phones.my phone/1")
    assert "letters, digits" in str(err)


def test_unknown_plugin_lists_installed_ones_and_suggests(write: Write) -> None:
    path = write(
        """
        phones:
          good: {plugin: dummy}
          dev:
            plugin: dumy
        """
    )
    err = bridge_error(path)
    assert err.file == str(path)
    assert err.key == "phones.dev.plugin"
    assert err.line is not None and err.line in (3, 4)  # the phone's or the plugin key's line
    text = str(err)
    assert "unknown plugin 'dumy'" in text
    assert "installed:" in text and "dummy" in text
    assert "Did you mean 'dummy'?" in text


def test_unknown_plugin_far_from_any_suggests_installing(write: Write) -> None:
    path = write("phones:\n  dev:\n    plugin: kannel\n")
    err = bridge_error(path)
    assert "unknown plugin 'kannel'" in str(err)
    assert "pip install smsbridge-kannel" in str(err)


def test_duplicate_phone_names(write: Write) -> None:
    path = write(
        """
        phones:
          dev: {plugin: dummy}
          other: {plugin: dummy}
          dev: {plugin: dummy, latency: 1}
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 4, "phones.dev")
    assert "duplicate phone name 'dev' (first at line 2)" in str(err)


def test_duplicate_keys_anywhere_name_their_path(write: Write) -> None:
    path = write(
        """
        phones:
          dev:
            plugin: dummy
            rate_limit: 1
            rate_limit: 2
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 5, "phones.dev.rate_limit")
    assert "duplicate key 'rate_limit' (first at line 4)" in str(err)
    path = write(
        """
        phones: {dev: {plugin: dummy}}
        routes:
          - phones: [dev]
            strategy: failover
            strategy: random
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 5, "routes[0].strategy")


# ---------------------------------------------------------------------- typos
def test_typo_at_top_level(write: Write) -> None:
    path = write("default_region: CI\nphone:\n  dev: {plugin: dummy}\n")
    err = bridge_error(path)
    assert_located(err, path, 2, "phone")
    assert "unknown key 'phone'; did you mean 'phones'?" in str(err)


def test_unknown_top_level_key_without_a_close_match_lists_known(write: Write) -> None:
    path = write("phones:\n  dev: {plugin: dummy}\nzzz: 1\n")
    err = bridge_error(path)
    assert_located(err, path, 3, "zzz")
    assert "known: default_region, store, webhooks, phones, routes" in str(err)


def test_typo_in_a_route(write: Write) -> None:
    path = write(
        """
        phones:
          dev: {plugin: dummy}
        routes:
          - phones: [dev]
            stratgy: random
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 5, "routes[0].stratgy")
    assert "did you mean 'strategy'?" in str(err)


def test_typo_in_a_match(write: Write) -> None:
    path = write(
        """
        phones:
          dev: {plugin: dummy}
        routes:
          - match:
              country: [CI]
            phones: [dev]
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 5, "routes[0].match.country")
    assert "did you mean 'countries'?" in str(err)


def test_typo_in_webhooks(write: Write) -> None:
    path = write("phones:\n  dev: {plugin: dummy}\nwebhooks:\n  public_ur: https://x\n")
    err = bridge_error(path)
    assert_located(err, path, 4, "webhooks.public_ur")
    assert "did you mean 'public_url'?" in str(err)


def test_typo_in_a_phone_option_uses_the_plugins_options(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = write(
        """
        phones:
          dev:
            plugin: dummy
            webhook_secret: ${HOOK_SECRET}
            fail_fro: ["+2250700000001"]
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 5, "phones.dev.fail_fro")
    assert "unknown option 'fail_fro' for plugin 'dummy'; did you mean 'fail_for'?" in str(err)
    assert SECRET not in str(err) and SECRET not in repr(err)


def test_unknown_option_without_a_close_match_lists_the_plugins_options(write: Write) -> None:
    path = write("phones:\n  dev:\n    plugin: dummy\n    qqqqqq: 1\n")
    err = bridge_error(path)
    assert_located(err, path, 4, "phones.dev.qqqqqq")
    assert "options of this plugin:" in str(err)
    assert "fail_for" in str(err) and "rate_limit" in str(err)


# ---------------------------------------------------------------------- option values
@pytest.mark.parametrize(
    ("option", "value", "problem"),
    [
        ("rate_limit", "-1", "greater than 0"),
        ("rate_limit", "fast", "valid number"),
        ("retries", "-1", "greater than or equal to 0"),
        ("error", "Nope", "Input should be"),
        ("delivery", "maybe", "Input should be"),
        ("countries", "[XX]", "unknown country code"),
        ("allow_ips", "[not-an-ip]", "not an IP address"),
        ("fail_all", "perhaps", "valid boolean"),
    ],
)
def test_invalid_option_values_never_show_a_secret(
    write: Write, monkeypatch: pytest.MonkeyPatch, option: str, value: str, problem: str
) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = write(
        f"""
        phones:
          dev:
            plugin: dummy
            webhook_secret: ${{HOOK_SECRET}}
            {option}: {value}
        """
    )
    err = bridge_error(path)
    assert err.file == str(path) and err.line == 5
    assert err.key is not None and err.key.startswith(f"phones.dev.{option}")
    assert problem in str(err)
    assert SECRET not in str(err) and SECRET not in repr(err)


def test_invalid_secret_value_is_not_echoed(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = write(
        """
        phones:
          dev:
            plugin: dummy
            webhook_secret: ["${HOOK_SECRET}"]
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 4, "phones.dev.webhook_secret")
    assert SECRET not in str(err)


class StrictOptions(PhoneOptions):
    api_token: SecretStr
    region_code: str = Field(default="eu")
    password: str | None = None

    @field_validator("api_token")
    @classmethod
    def _token(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().startswith("tok_"):
            # a careless plugin validator quoting the value it refuses
            raise ValueError(f"token {value.get_secret_value()!r} must start with tok_")
        return value

    @field_validator("region_code")
    @classmethod
    def _region(cls, value: str) -> str:
        raise ValueError(f"bad region {value}")


def _phone(**options: Any) -> PhoneConfig:
    return PhoneConfig(
        name="strict",
        plugin="strict",
        options=options,
        line=7,
        key_lines={k: 8 + i for i, k in enumerate(options)},
    )


def test_validate_options_masks_secrets_even_when_a_validator_quotes_them() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_options(_phone(api_token=SECRET), StrictOptions, "f.yaml")
    err = caught.value
    assert (err.file, err.line, err.key) == ("f.yaml", 8, "phones.strict.api_token")
    assert "must start with tok_" in str(err)
    assert SECRET not in str(err) and "***" in str(err)


def test_validate_options_masks_secretish_keys_of_plain_string_fields() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_options(
            _phone(api_token="tok_1", password=SECRET, region_code=SECRET), StrictOptions, None
        )
    assert caught.value.key == "phones.strict.region_code"
    assert SECRET not in str(caught.value)


def test_validate_options_missing_required_option() -> None:
    with pytest.raises(ConfigError) as caught:
        validate_options(_phone(), StrictOptions, "f.yaml")
    err = caught.value
    assert (err.line, err.key) == (7, "phones.strict.api_token")
    assert "missing required option 'api_token' for plugin 'strict'" in str(err)


def test_validate_options_counts_further_problems() -> None:
    with pytest.raises(ConfigError, match=r"and 1 more problem"):
        validate_options(_phone(api_token="tok_1", rate_limit=-1, retries=-1), StrictOptions, None)


# ---------------------------------------------------------------------- ${VAR}
def test_missing_env_var_names_var_file_line_and_key(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMSBRIDGE_TEST_NOT_SET", raising=False)
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    path = write(
        """
        phones:
          dev:
            plugin: dummy
            webhook_secret: ${HOOK_SECRET}
            outbox_file: /tmp/${SMSBRIDGE_TEST_NOT_SET}/out.jsonl
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 5, "phones.dev.outbox_file")
    assert "${SMSBRIDGE_TEST_NOT_SET} is not set" in str(err)
    assert SECRET not in str(err)


def test_missing_env_var_in_a_list_names_the_item(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SMSBRIDGE_TEST_NOT_SET", raising=False)
    path = write(
        """
        phones:
          dev:
            plugin: dummy
            fail_for:
              - "+2250700000001"
              - ${SMSBRIDGE_TEST_NOT_SET}
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 6, "phones.dev.fail_for[1]")


def test_interpolation_forms(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOOK_SECRET", SECRET)
    monkeypatch.setenv("EMPTY_VAR", "")
    monkeypatch.setenv("SENDER_NUMBER", "+2250700000001")
    monkeypatch.delenv("SMSBRIDGE_TEST_NOT_SET", raising=False)
    path = write(
        """
        phones:
          a:
            plugin: dummy
            webhook_secret: pre-${HOOK_SECRET}-post
            outbox_file: ${SMSBRIDGE_TEST_NOT_SET:-/tmp/default.jsonl}
            fail_for: ["${SENDER_NUMBER}", "${EMPTY_VAR:-+2250700000002}"]
            rate_limit: ${SMSBRIDGE_TEST_NOT_SET:-2.5}
            fail_all: ${SMSBRIDGE_TEST_NOT_SET:-false}
          b:
            plugin: dummy
            webhook_secret: "pa$$word ${EMPTY_VAR} $${NOT_A_VAR} $$$$ $HOME"
            outbox_file: ${SMSBRIDGE_TEST_NOT_SET:-}
        """
    )
    config = load_config(path)
    a, b = config.phones["a"].options, config.phones["b"].options
    assert a["webhook_secret"] == f"pre-{SECRET}-post"
    assert a["outbox_file"] == "/tmp/default.jsonl"
    assert a["fail_for"] == ["+2250700000001", "+2250700000002"]  # set-but-empty uses default
    assert b["webhook_secret"] == "pa$word  ${NOT_A_VAR} $$ $HOME"  # $$ escapes; $HOME is literal
    assert b["outbox_file"] == ""
    with smsbridge.Bridge.from_yaml(path) as bridge:
        phone = bridge.phones["a"]
        assert isinstance(phone, DummyPhone)
        assert phone.options.rate_limit == 2.5
        assert phone.options.fail_all is False


def test_interpolation_uses_the_given_env_mapping(write: Write) -> None:
    path = write("phones:\n  dev:\n    plugin: dummy\n    outbox_file: ${OUT}\n")
    assert load_config(path, env={"OUT": "/tmp/x"}).phones["dev"].options["outbox_file"] == (
        "/tmp/x"
    )
    with pytest.raises(ConfigError, match=r"\$\{OUT\} is not set"):
        load_config(path, env={})


@pytest.mark.parametrize(
    "value", ["${1BAD}", "${UNCLOSED", "${}", "${A B}", "${A:default}", "x${-}y"]
)
def test_malformed_references_are_errors_that_do_not_echo_the_value(
    write: Write, value: str
) -> None:
    path = write(f'phones:\n  dev:\n    plugin: dummy\n    webhook_secret: "{value}"\n')
    err = bridge_error(path)
    assert_located(err, path, 4, "phones.dev.webhook_secret")
    assert "malformed ${...} reference" in str(err)
    assert value not in str(err)


# ---------------------------------------------------------------------- routes
def test_route_naming_an_unknown_phone(write: Write) -> None:
    path = write(
        """
        phones:
          orange-ci: {plugin: dummy}
          twilio: {plugin: dummy}
        routes:
          - match: {countries: [CI]}
            phones: [orange-ic, twilio]
        """
    )
    err = bridge_error(path)
    assert_located(err, path, 6, "routes[0].phones")
    assert "unknown phone 'orange-ic'; did you mean 'orange-ci'?" in str(err)
    assert "phones: orange-ci, twilio" in str(err)


@pytest.mark.parametrize(
    ("route", "line", "key", "problem"),
    [
        ("- match: {tags: [x]}", 5, "routes[0].phones", "no 'phones:'"),
        ("- phones: []", 5, "routes[0].phones", "no 'phones:'"),
        ("- phones: [a, a]", 5, "routes[0].phones", "listed twice"),
        ("- phones: {a: 1}", 5, "routes[0].phones", "must be a list"),
        ("- [a]", 5, "routes[0]", "a route must be a mapping"),
        ("- {phones: [a], strategy: round-robin}", 5, "routes[0].strategy", "unknown strategy"),
        ("- {phones: [a], strategy: weighted}", 5, "routes[0].weights", "needs 'weights:'"),
        (
            "- {phones: [a, b], strategy: weighted, weights: {a: 1, c: 2}}",
            5,
            "routes[0].weights.c",
            "not in this route",
        ),
        (
            "- {phones: [a, b], strategy: weighted, weights: {a: -1}}",
            5,
            "routes[0].weights.a",
            "must be a number >= 0",
        ),
        (
            "- {phones: [a, b], strategy: weighted, weights: {a: lots}}",
            5,
            "routes[0].weights.a",
            "must be a number >= 0",
        ),
        (
            "- {phones: [a, b], strategy: weighted, weights: {a: .nan}}",
            5,
            "routes[0].weights.a",
            "must be a number >= 0",
        ),
        (
            "- {phones: [a, b], strategy: weighted, weights: {a: .inf}}",
            5,
            "routes[0].weights.a",
            "must be a number >= 0",
        ),
        (
            "- {phones: [a, b], strategy: weighted, weights: {a: true}}",
            5,
            "routes[0].weights.a",
            "must be a number >= 0",
        ),
        (
            "- {phones: [a, b], weights: {a: 1, b: 2}}",
            5,
            "routes[0].weights",
            "weights only apply to strategy 'weighted'",
        ),
        (
            "- {phones: [a, b], strategy: random, weights: {a: 1}}",
            5,
            "routes[0].weights",
            "weights only apply to strategy 'weighted'",
        ),
        ("- {phones: [a], weights: [1]}", 5, "routes[0].weights", "must be a mapping"),
        ("- {phones: [a], match: [CI]}", 5, "routes[0].match", "must be a mapping"),
        ("- {phones: [a], match: {countries: [XX]}}", 5, "routes[0].match.countries", "'XX'"),
        ("- {phones: [a], match: {prefixes: [+3a]}}", 5, "routes[0].match.prefixes", "digits"),
        (
            "- {phones: [a], match: {recipients: ['+225 07']}}",
            5,
            "routes[0].match.recipients",
            "invalid recipient",
        ),
        ("- {phones: [a], resend_ambiguous: sometimes}", 5, "routes[0].resend_ambiguous", "true"),
    ],
)
def test_route_errors(write: Write, route: str, line: int, key: str, problem: str) -> None:
    path = write(f"phones:\n  a: {{plugin: dummy}}\n  b: {{plugin: dummy}}\nroutes:\n  {route}\n")
    err = bridge_error(path)
    assert_located(err, path, line, key)
    assert problem in str(err)


def test_routes_must_be_a_list(write: Write) -> None:
    path = write("phones:\n  a: {plugin: dummy}\nroutes:\n  phones: [a]\n")
    err = bridge_error(path)
    assert_located(err, path, 3, "routes")


def test_route_values_are_parsed(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RESEND", "yes")
    path = write(
        """
        default_region: CI
        phones:
          a: {plugin: dummy}
          b: {plugin: dummy}
        routes:
          - name: vip
            match:
              recipients: [0701020304, +2250700000001]
              prefixes: ["0033", "44", "+ 1"]
              countries: [NO, civ, SEN]
              tags: otp
            phones: [a, b]
            strategy: weighted
            weights: {a: 3, b: "0.5"}
            resend_ambiguous: ${RESEND}
          - phones: [b]
        """
    )
    config = load_config(path)
    vip, default = config.routes
    assert vip.name == "vip" and vip.label == "vip" and vip.line == 6
    # national numbers use default_region; an unquoted +E.164 keeps its '+'
    assert vip.match.recipients == frozenset({"+2250701020304", "+2250700000001"})
    assert vip.match.prefixes == ("+33", "+44", "+1")
    assert vip.match.countries == frozenset({"NO", "CI", "SN"})  # NO stays Norway
    assert vip.match.tags == frozenset({"otp"})
    assert vip.weights == {"a": 3.0, "b": 0.5}
    assert vip.resend_ambiguous is True
    assert default.match.is_default and default.strategy == "failover"
    assert default.label == "route at line 16"


# ---------------------------------------------------------------------- other sections
@pytest.mark.parametrize(
    ("section", "line", "key", "problem"),
    [
        ("default_region: XX", 1, "default_region", "unknown country code 'XX'"),
        ("store: [a]", 1, "store", "must be a string"),
        ("webhooks: https://x", 1, "webhooks", "must be a mapping"),
        ("webhooks:\n  public_url: ftp://x", 2, "webhooks.public_url", "http(s) URL"),
        ("webhooks:\n  max_body_bytes: 0", 2, "webhooks.max_body_bytes", "integer > 0"),
        ("webhooks:\n  max_body_bytes: 1.5", 2, "webhooks.max_body_bytes", "integer > 0"),
        ("webhooks:\n  trust_proxy: maybe", 2, "webhooks.trust_proxy", "true or false"),
        ("forward: {url: x}", 1, "forward", "must be a list"),
        ("forward:\n  - url: ftp://x", 2, "forward[0].url", "http(s) 'url'"),
        ("forward:\n  - {url: 'http://x', events: [sent]}", 2, "forward[0].events", "status"),
        ("forward:\n  - {url: 'http://x', timeout: soon}", 2, "forward[0].timeout", "number > 0"),
        ("forward:\n  - {url: 'http://x', retries: 1.5}", 2, "forward[0].retries", "integer"),
        ("forward:\n  - {url: 'http://x', secrt: 1}", 2, "forward[0].secrt", "'secret'"),
    ],
)
def test_other_section_errors(
    write: Write, section: str, line: int, key: str, problem: str
) -> None:
    path = write(f"{section}\nphones:\n  a: {{plugin: dummy}}\n")
    err = bridge_error(path)
    assert_located(err, path, line, key)
    assert problem in str(err)


def test_other_sections_are_parsed(write: Write, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FWD_SECRET", SECRET)
    monkeypatch.setenv("MAX_BODY", "1024")
    path = write(
        """
        webhooks:
          public_url: http://127.0.0.1:8000/
          max_body_bytes: ${MAX_BODY}
          trust_proxy: ${TRUST:-false}
          log_bodies: true
        forward:
          - url: https://app.example.com/sms
            secret: ${FWD_SECRET}
            events: status
            timeout: "2.5"
            retries: 0
        phones:
          a: {plugin: dummy}
        """
    )
    config = load_config(path)
    hooks = config.webhooks
    assert hooks.public_url == "http://127.0.0.1:8000"
    assert (hooks.max_body_bytes, hooks.trust_proxy, hooks.log_bodies) == (1024, False, True)
    (target,) = config.forward
    assert target.secret == SECRET and SECRET not in repr(target)
    assert (target.events, target.timeout, target.retries) == (frozenset({"status"}), 2.5, 0)


def test_feature_sections_are_kept_interpolated_with_their_lines(
    write: Write, monkeypatch: pytest.MonkeyPatch
) -> None:
    """templates/keywords/optouts/verification/queue are validated by their own modules:
    the config keeps them as loaded (with lines, for their errors) after interpolation."""
    monkeypatch.setenv("VERIFY_SECRET", SECRET)
    path = write(
        """
        phones:
          dev: {plugin: dummy}
        templates:
          receipt: "Total: ${{ amount }} {{ currency }}"
        keywords:
          - {keywords: [STOP], reply: bye}
        optouts:
          enabled: true
        verification:
          length: 6
          secret: ${VERIFY_SECRET}
        queue:
          backend: local
        """
    )
    config = load_config(path)
    assert config.templates == {"receipt": "Total: ${{ amount }} {{ currency }}"}
    assert config.keywords == [{"keywords": ["STOP"], "reply": "bye"}]
    assert config.optouts == {"enabled": True}
    assert config.verification == {"length": 6, "secret": SECRET}
    assert config.verification.key_lines == {"length": 10, "secret": 11}
    assert config.queue == {"backend": "local"}
    assert SECRET not in repr(config.phones)
    bare = load_config(write("phones:\n  dev: {plugin: dummy}\n"))
    assert (bare.templates, bare.keywords, bare.optouts, bare.verification, bare.queue) == (
        None,
        None,
        None,
        None,
        None,
    )
    with smsbridge.Bridge.from_yaml(path) as bridge:  # the bridge accepts such a file
        assert list(bridge.phones) == ["dev"]


# ---------------------------------------------------------------------- YAML details
def test_yaml_keeps_country_codes_and_numbers_as_written() -> None:
    data = load_yaml("a: NO\nb: +2250701020304\nc: 0701020304\nd: 12\ne: yes\nf: true\ng: 0x1f\n")
    assert data == {
        "a": "NO",  # not False (the YAML 1.1 "Norway problem")
        "b": "+2250701020304",
        "c": "0701020304",  # not 701020304, nor an octal
        "d": 12,
        "e": "yes",
        "f": True,
        "g": 31,
    }


def test_parse_config_accepts_plain_python_data() -> None:
    config = parse_config(
        {"phones": {"dev": {"plugin": "dummy"}}, "routes": [{"phones": ["dev"]}]}, env={}
    )
    assert config.phones["dev"].plugin == "dummy" and config.routes[0].phones == ("dev",)
    with pytest.raises(ConfigError, match="did you mean 'phones'"):
        parse_config({"phone": {}})


# ---------------------------------------------------------------------- lookup order
BY_NAME = "phones:\n  {name}: {{plugin: dummy}}\n"


def test_load_resolves_path_then_env_then_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    explicit = tmp_path / "explicit.yaml"
    explicit.write_text(BY_NAME.format(name="from-path"), encoding="utf-8")
    from_env = tmp_path / "env.yaml"
    from_env.write_text(BY_NAME.format(name="from-env"), encoding="utf-8")
    workdir = tmp_path / "work"
    workdir.mkdir()
    (workdir / "smsbridge.yaml").write_text(BY_NAME.format(name="from-cwd"), encoding="utf-8")
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("SMSBRIDGE_CONFIG", str(from_env))

    def names(bridge: smsbridge.Bridge) -> list[str]:
        with bridge:
            return list(bridge.phones)

    assert names(smsbridge.load(explicit)) == ["from-path"]
    assert names(smsbridge.load(str(explicit))) == ["from-path"]
    assert names(smsbridge.load()) == ["from-env"]
    assert names(smsbridge.Bridge.from_yaml()) == ["from-env"]
    monkeypatch.setenv("SMSBRIDGE_CONFIG", "")
    assert names(smsbridge.load()) == ["from-cwd"]
    monkeypatch.delenv("SMSBRIDGE_CONFIG")
    assert names(smsbridge.load()) == ["from-cwd"]
    assert resolve_path() == Path("smsbridge.yaml")

    (workdir / "smsbridge.yaml").unlink()
    with pytest.raises(ConfigError) as caught:
        smsbridge.load()
    assert caught.value.file == "smsbridge.yaml"
    assert "not found" in str(caught.value) and "$SMSBRIDGE_CONFIG" in str(caught.value)
    monkeypatch.setenv("SMSBRIDGE_CONFIG", str(tmp_path / "missing.yaml"))
    with pytest.raises(ConfigError) as caught:
        smsbridge.load()
    assert caught.value.file == str(tmp_path / "missing.yaml")


def test_resolve_path_expands_the_home_directory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HOME", "/home/someone")
    assert resolve_path("~/sms.yaml") == Path("/home/someone/sms.yaml")
    monkeypatch.setenv("SMSBRIDGE_CONFIG", "~/env.yaml")
    assert resolve_path() == Path("/home/someone/env.yaml")
