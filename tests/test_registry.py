"""Plugin discovery: listing without importing, loading on demand, and clear errors for
unknown, broken and wrong plugins.

The third-party plugins here are real installed distributions as far as Python can tell:
a ``*.dist-info`` folder (METADATA + entry_points.txt) and its modules in a folder put on
``sys.path``, which is exactly what ``pip install`` leaves in site-packages.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

import smsbridge
from smsbridge.errors import ConfigError
from smsbridge.phone import Phone
from smsbridge.phones.dummy import DummyPhone
from smsbridge.registry import GROUP, PluginInfo, available, load_plugin

ENTRY_POINTS = {
    "broken": "brokenplug_mod:Phone",  # its module raises ImportError
    "crashy": "crashyplug_mod:Phone",  # its module raises RuntimeError
    "noattr": "goodplug_mod:Missing",  # module fine, no such attribute
    "notphone": "goodplug_mod:NotAPhone",  # a class, but not a smsbridge.Phone
    "function": "goodplug_mod:make_phone",  # not even a class
    "good": "goodplug_mod:GoodPhone",  # a working third-party phone
}

MODULES = {
    "brokenplug_mod.py": "raise ImportError(\"No module named 'libfoo' (needs libfoo>=9)\")\n",
    "crashyplug_mod.py": 'raise RuntimeError("plugin exploded at import")\n',
    "goodplug_mod.py": """
        from typing import ClassVar

        from smsbridge.phones.dummy import DummyPhone


        class GoodPhone(DummyPhone):
            plugin: ClassVar[str] = "good"


        class NotAPhone:
            pass


        def make_phone() -> GoodPhone:
            return GoodPhone("x")
        """,
}


@pytest.fixture
def fake_dist(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """Install the distribution ``brokenplug`` 1.0 (several entry points) on sys.path."""
    info = tmp_path / "brokenplug-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: brokenplug\nVersion: 1.0\n", encoding="utf-8"
    )
    lines = [f"[{GROUP}]"] + [f"{name} = {value}" for name, value in ENTRY_POINTS.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    for name, source in MODULES.items():
        (tmp_path / name).write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    load_plugin.cache_clear()
    yield tmp_path
    load_plugin.cache_clear()
    for module in ("brokenplug_mod", "crashyplug_mod", "goodplug_mod"):
        sys.modules.pop(module, None)


def write_config(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "smsbridge.yaml"
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")
    return path


# ---------------------------------------------------------------------- listing
def test_available_lists_dummy_from_its_entry_point() -> None:
    plugins = available()
    dummy = plugins["dummy"]
    assert dummy == PluginInfo(
        name="dummy",
        value="smsbridge.phones.dummy:DummyPhone",
        distribution="smsbridge",
        version=importlib.metadata.version("smsbridge"),
    )
    assert dummy.to_dict() == {
        "name": "dummy",
        "value": "smsbridge.phones.dummy:DummyPhone",
        "distribution": "smsbridge",
        "version": importlib.metadata.version("smsbridge"),
    }
    assert list(plugins) == sorted(plugins)


def test_available_imports_no_plugin() -> None:
    code = (
        "import json, sys\n"
        "from smsbridge.registry import available\n"
        "plugins = available()\n"
        "loaded = [m for m in sys.modules if m.startswith('smsbridge.phones') "
        "or m.startswith('smsbridge_')]\n"
        "print(json.dumps({'plugins': sorted(plugins), 'loaded': loaded}))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
    )
    data = json.loads(out.stdout)
    assert "dummy" in data["plugins"]
    assert data["loaded"] == []


def test_available_lists_a_broken_plugin_without_importing_it(fake_dist: Path) -> None:
    plugins = available()
    assert plugins["broken"] == PluginInfo("broken", "brokenplug_mod:Phone", "brokenplug", "1.0")
    assert set(ENTRY_POINTS) <= set(plugins) and "dummy" in plugins
    assert "brokenplug_mod" not in sys.modules and "goodplug_mod" not in sys.modules


# ---------------------------------------------------------------------- loading
def test_load_dummy() -> None:
    load_plugin.cache_clear()
    cls = load_plugin("dummy")
    assert cls is DummyPhone and issubclass(cls, Phone) and cls.plugin == "dummy"
    assert load_plugin("dummy") is cls
    assert load_plugin.cache_info().hits >= 1


def test_unknown_plugin_lists_installed_and_suggests() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugin("dumm")
    err = caught.value
    assert err.key == "plugin"
    text = str(err)
    assert "unknown plugin 'dumm'" in text
    assert f"installed: {', '.join(available())}" in text
    assert "Did you mean 'dummy'?" in text


def test_unknown_plugin_without_a_close_name_suggests_installing_it() -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugin("kannel")
    assert "Did you mean" not in str(caught.value)
    assert "pip install smsbridge-kannel" in str(caught.value)


def test_a_third_party_plugin_loads_and_sends(fake_dist: Path) -> None:
    cls = load_plugin("good")
    assert cls.__name__ == "GoodPhone" and issubclass(cls, DummyPhone)
    path = write_config(fake_dist, "phones:\n  ext: {plugin: good}\n")
    with smsbridge.Bridge.from_yaml(path) as bridge:
        phone = bridge.phones["ext"]
        assert type(phone).__name__ == "GoodPhone"
        assert bridge.send("+2250701020304", "hi").phone == "ext"


def test_plugin_whose_import_fails_names_its_distribution_and_the_error(
    fake_dist: Path,
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugin("broken")
    err = caught.value
    text = str(err)
    assert "plugin 'broken'" in text
    assert "distribution brokenplug 1.0" in text
    assert "ImportError: No module named 'libfoo' (needs libfoo>=9)" in text
    assert isinstance(err.__cause__, ImportError)
    # failures are not cached: a fixed installation is picked up by the next call
    assert load_plugin.cache_info().currsize == 0


@pytest.mark.parametrize(
    ("name", "error"),
    [("crashy", "RuntimeError: plugin exploded at import"), ("noattr", "AttributeError")],
)
def test_any_import_failure_is_a_config_error(fake_dist: Path, name: str, error: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugin(name)
    assert "distribution brokenplug 1.0" in str(caught.value)
    assert error in str(caught.value)


@pytest.mark.parametrize(
    ("name", "value"),
    [("notphone", "goodplug_mod:NotAPhone"), ("function", "goodplug_mod:make_phone")],
)
def test_plugin_that_is_not_a_phone_subclass(fake_dist: Path, name: str, value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_plugin(name)
    text = str(caught.value)
    assert f"plugin '{name}'" in text
    assert "distribution brokenplug 1.0" in text
    assert "not a smsbridge.Phone subclass" in text and value in text


def test_a_broken_plugin_breaks_only_configs_that_use_it(fake_dist: Path) -> None:
    good = write_config(fake_dist, "phones:\n  dev: {plugin: dummy}\n")
    with smsbridge.Bridge.from_yaml(good) as bridge:
        assert bridge.send("+2250701020304", "still works").phone == "dev"

    bad = fake_dist / "bad.yaml"
    bad.write_text(
        "phones:\n  dev: {plugin: dummy}\n  legacy:\n    plugin: broken\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError) as caught:
        smsbridge.Bridge.from_yaml(bad)
    err = caught.value
    assert err.file == str(bad) and err.key == "phones.legacy.plugin"
    assert err.line in (3, 4)
    assert "distribution brokenplug 1.0" in str(err) and "ImportError" in str(err)

    # and a good bridge built afterwards is unaffected
    with smsbridge.Bridge.from_yaml(good) as bridge:
        assert bridge.send("+2250701020304", "again").phone == "dev"


def add_dist(folder: Path, name: str, version: str, entry_points: dict[str, str]) -> None:
    info = folder / f"{name}-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n", encoding="utf-8"
    )
    lines = [f"[{GROUP}]"] + [f"{n} = {v}" for n, v in entry_points.items()]
    (info / "entry_points.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_a_name_claimed_by_two_distributions_names_both(fake_dist: Path) -> None:
    (fake_dist / "otherplug_mod.py").write_text(
        "from goodplug_mod import GoodPhone as OtherPhone\n", encoding="utf-8"
    )
    add_dist(fake_dist, "otherplug", "2.1", {"good": "otherplug_mod:OtherPhone"})
    with pytest.raises(ConfigError) as caught:
        load_plugin("good")
    text = str(caught.value)
    assert "plugin name 'good' is registered by more than one installed distribution" in text
    assert "brokenplug 1.0" in text and "otherplug 2.1" in text


def test_a_plugin_installed_while_the_process_runs_is_found(fake_dist: Path) -> None:
    assert load_plugin("good").__name__ == "GoodPhone"  # stevedore has now seen sys.path
    (fake_dist / "lateplug_mod.py").write_text(
        "from goodplug_mod import GoodPhone as LatePhone\n", encoding="utf-8"
    )
    add_dist(fake_dist, "lateplug", "0.3", {"late": "lateplug_mod:LatePhone"})
    assert available()["late"].distribution == "lateplug"
    assert load_plugin("late").__name__ == "GoodPhone"
    sys.modules.pop("lateplug_mod", None)
