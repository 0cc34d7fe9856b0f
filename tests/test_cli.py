"""The smsbridge command: output, exit codes, one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smsbridge.cli import main

CONFIG = """
default_region: CI
webhooks: {public_url: "https://sms.example.com"}
phones:
  ci:
    {plugin: dummy, countries: [CI], delivery: none, webhook_secret: "${HOOK:-hook-s3cret}"}
  world: {plugin: dummy, delivery: none, units: 5}
  broke: {plugin: dummy, fail_all: true, error: InsufficientCredit, retries: 0}
routes:
  - match: {countries: [CI]}
    phones: [ci, world]
  - match: {tags: [broke]}
    phones: [broke]
  - phones: [world]
"""


@pytest.fixture
def cfg(config_file: Any) -> str:
    return str(config_file(CONFIG))


def run(capsys: Any, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_send_human_and_json(cfg: str, capsys: Any) -> None:
    code, out, _ = run(capsys, "--config", cfg, "send", "07 01 02 03 04", "Bonjour")
    assert code == 0 and "sent via ci: queued" in out
    code, out, _ = run(
        capsys, "send", "--config", cfg, "--json", "+33612345678", "Hi", "--tag", "x"
    )
    data = json.loads(out)
    assert code == 0 and data["phone"] == "world" and data["status"] == "queued"


def test_failed_send_exits_1_with_one_line(cfg: str, capsys: Any) -> None:
    code, out, err = run(capsys, "--config", cfg, "send", "+33612345678", "x", "--tag", "broke")
    assert code == 1
    assert err.strip().count("\n") == 0 and "InsufficientCredit" in err
    assert "Traceback" not in err and "broke" in out  # the attempts table


def test_invalid_recipient_exits_1(cfg: str, capsys: Any) -> None:
    code, _, err = run(capsys, "--config", cfg, "send", "garbage", "x")
    assert code == 1 and "InvalidRecipient" in err and "'garbage'" in err


def test_config_errors_exit_2(config_file: Any, capsys: Any, tmp_path: Path) -> None:
    bad = config_file("phones:\n  x: {plugin: dummy, rate_limt: 3}\n", "bad.yaml")
    code, _, err = run(capsys, "--config", str(bad), "phones")
    assert code == 2 and "bad.yaml:2" in err and "did you mean 'rate_limit'" in err
    code, _, err = run(capsys, "--config", str(tmp_path / "missing.yaml"), "phones")
    assert code == 2 and "not found" in err


def test_route_phones_capabilities_plugins_check_balance(cfg: str, capsys: Any) -> None:
    code, out, _ = run(capsys, "--config", cfg, "route", "0701020304")
    assert (code, out.strip()) == (0, "ci -> world")
    code, out, _ = run(capsys, "--config", cfg, "phones")
    assert code == 0 and "webhooks/ci/status?token=***" in out and "hook-s3cret" not in out
    code, out, _ = run(capsys, "--config", cfg, "capabilities", "--json")
    assert json.loads(out)["ci"]["countries"] == ["CI"]
    code, out, _ = run(capsys, "--config", cfg, "capabilities")
    assert out.splitlines()[0].split()[:3] == ["phone", "send", "receive"]
    code, out, _ = run(capsys, "plugins", "--json")
    assert {"name": "dummy", "distribution": "smsbridge"}.items() <= json.loads(out)[0].items()
    code, out, _ = run(capsys, "--config", cfg, "check")
    assert code == 0 and "valid, 3 phone(s)" in out
    code, out, _ = run(capsys, "--config", cfg, "balance", "world", "--json")
    assert json.loads(out)[0]["units"] == 5


def test_usage_errors_exit_2(capsys: Any) -> None:
    with pytest.raises(SystemExit) as info:
        main(["send"])
    assert info.value.code == 2
    with pytest.raises(SystemExit) as info:
        main([])
    assert info.value.code == 2


def test_console_script_runs_demo() -> None:
    exe = Path(sys.executable).with_name("smsbridge")
    proc = subprocess.run([str(exe), "demo", "--json"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    first = data["sends"][0]
    assert [a["phone"] for a in first["attempts"]] == ["orange-ci", "backup-ci"]
    assert first["attempts"][0]["error_type"] == "InsufficientCredit"
    assert {r["status"] for r in data["reports"]} == {"delivered", "failed"}
    assert data["inbound"][0]["body"] == "STOP"
    assert data["after_stop"] == "refused (opt-out)"
    assert set(data["capabilities"]) == {"orange-ci", "backup-ci", "orange-sn", "world"}
