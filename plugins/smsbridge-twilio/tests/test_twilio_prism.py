"""Contract test: the plugin's requests against Twilio's own OpenAPI spec, served by Prism.

Prism (``@stoplight/prism-cli``, installed by ``scripts/install-prism.sh``) answers 422 to a
request that violates the spec (missing/invalid fields, wrong types, bad path parameters)
and 401 to one without the Basic auth the spec requires. Every call here must get a 2xx.

Binary: ``$SMSBRIDGE_PRISM`` or ``<repo>/.prism/node_modules/.bin/prism``. Spec:
``$SMSBRIDGE_TWILIO_SPEC`` or ``<repo>/../shared/reference/twilio-oai/twilio_api_v2010.json``.
When either is missing the tests skip, except under CI (env ``CI`` set), where they fail.

One adjustment to the spec, in a temporary copy: array properties of form bodies (``MediaUrl``)
get the OpenAPI 3 default encoding (``style: form, explode: true``: repeated keys, what the
SDK and Twilio use) written out. Prism 5.16 only deserialises a form array when an encoding
is declared and otherwise reports "MediaUrl must be array" for a conforming request (see
stoplightio/prism#2473). Prism still keeps only the last of repeated keys, so with several
media URLs it validates the last one as a one-item array.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from smsbridge_twilio import TwilioPhone

from smsbridge.message import OutgoingMessage
from smsbridge.status import Status
from smsbridge.testing import free_port

REPO = Path(__file__).resolve().parents[3]
ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
SERVICE_SID = "MG" + "fedcba9876543210" * 2


def _prism_binary() -> Path:
    env = os.environ.get("SMSBRIDGE_PRISM")
    if env:
        return Path(shutil.which(env) or env)
    return REPO / ".prism" / "node_modules" / ".bin" / "prism"


def _spec() -> Path:
    env = os.environ.get("SMSBRIDGE_TWILIO_SPEC")
    default = REPO.parent / "shared" / "reference" / "twilio-oai" / "twilio_api_v2010.json"
    return Path(env) if env else default


def _with_default_form_encodings(spec: Path, target: Path) -> Path:
    """Copy ``spec`` with the OAS 3 default encoding made explicit for form-body arrays."""
    data = json.loads(spec.read_text(encoding="utf-8"))
    for path_item in data.get("paths", {}).values():
        for operation in path_item.values():
            content = (
                operation.get("requestBody", {}).get("content", {})
                if isinstance(operation, dict)
                else {}
            )
            media = content.get("application/x-www-form-urlencoded")
            if not media:
                continue
            encoding = media.setdefault("encoding", {})
            for name, prop in media.get("schema", {}).get("properties", {}).items():
                if prop.get("type") == "array" and name not in encoding:
                    encoding[name] = {"style": "form", "explode": True}
    target.write_text(json.dumps(data), encoding="utf-8")
    return target


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set: the Prism contract test must run)")
    pytest.skip(reason)


@pytest.fixture(scope="module")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary, spec = _prism_binary(), _spec()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        _unavailable(
            f"Prism not found at {binary}: run scripts/install-prism.sh or set SMSBRIDGE_PRISM"
        )
    if not spec.is_file():
        _unavailable(f"Twilio OpenAPI spec not found at {spec}: set SMSBRIDGE_TWILIO_SPEC")
    workdir = tmp_path_factory.mktemp("prism")
    spec = _with_default_form_encodings(spec, workdir / spec.name)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Prism logs every route at start-up: a file, not a pipe nobody drains.
    log_path = workdir / "prism.log"
    log = log_path.open("wb")
    proc = subprocess.Popen(
        [str(binary), "mock", "-h", "127.0.0.1", "-p", str(port), str(spec)],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                output = log_path.read_text(errors="replace")[-2000:]
                pytest.fail(f"Prism exited with {proc.returncode}:\n{output}")
            try:
                requests.get(url + "/", timeout=1)  # any answer (404) means it listens
                break
            except (requests.ConnectionError, requests.Timeout):
                if time.monotonic() > deadline:
                    pytest.fail("Prism did not start listening within 90 s")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.fixture
def phone(prism_url: str) -> Iterator[TwilioPhone]:
    options = {
        "account_sid": ACCOUNT_SID,
        "auth_token": "test-secret-123",
        "from": "+15005550006",
        "base_url": prism_url,
        "validity_period": 600,
        "retries": 0,
        "timeout": 10,
    }
    phone = TwilioPhone("tw", options, public_url="https://sms.example.com")
    yield phone
    phone.close()


def _last_status(phone: TwilioPhone) -> int:
    response = phone.http_client.last_response
    assert response is not None
    return int(response.status_code)


def test_prism_rejects_a_request_that_violates_the_spec(prism_url: str) -> None:
    # The control: without it, "accepted" below could mean "Prism checks nothing".
    url = f"{prism_url}/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    resp = requests.post(url, data={"Body": "no To"}, auth=(ACCOUNT_SID, "x"), timeout=10)
    assert resp.status_code == 422, resp.text
    resp = requests.post(url, data={"To": "+14155552671", "Body": "x"}, timeout=10)
    assert resp.status_code == 401, resp.text


def test_send_sms_accepted_by_spec(phone: TwilioPhone) -> None:
    result = phone.send(OutgoingMessage(to="+14155552671", body="Hello from smsbridge"))
    assert _last_status(phone) == 201
    assert result.provider_id and result.provider_id.startswith(("SM", "MM"))
    assert result.status is Status.queued


def test_send_with_sender_id_and_service_accepted_by_spec(prism_url: str) -> None:
    phone = TwilioPhone(
        "tw",
        {
            "account_sid": ACCOUNT_SID,
            "auth_token": "test-secret-123",
            "messaging_service_sid": SERVICE_SID,
            "base_url": prism_url,
            "retries": 0,
        },
    )
    try:
        phone.send(OutgoingMessage(to="+33612345678", body="Bientôt ✓", sender="MyBrand"))
        assert _last_status(phone) == 201
    finally:
        phone.close()


def test_send_mms_accepted_by_spec(phone: TwilioPhone) -> None:
    media = ("https://cdn.example.com/a.png", "https://cdn.example.com/b.jpg")
    result = phone.send(OutgoingMessage(to="+14155552671", body="pictures", media=media))
    assert _last_status(phone) == 201
    assert result.provider_id


def test_fetch_status_accepted_by_spec(phone: TwilioPhone) -> None:
    report = phone.fetch_status("SM" + "0123456789abcdef" * 2)
    assert _last_status(phone) == 200
    assert report.raw_status and report.status is not None


def test_balance_and_check_accepted_by_spec(phone: TwilioPhone) -> None:
    balance = phone.balance()
    assert _last_status(phone) == 200 and balance.units is not None
    phone.check()
    assert _last_status(phone) == 200
