"""Message templates: one slug, one body per locale, rendered in a sandbox.

Templates come from three places, later ones replacing earlier ones slug by slug:
the defaults shipped with smsbridge (``verification`` in English and French), a folder
(``SLUG.txt`` for a locale-less body, ``SLUG.LOCALE.txt`` per locale), and the YAML::

    templates:
      folder: sms-templates          # optional, relative to the config file
      default_locale: fr             # optional: the locale when none is asked for
      welcome:
        fr: "Bienvenue {{ name }} !"
        en: "Welcome {{ name }}!"
        default_locale: fr           # optional, per template
      otp-short: "Code: {{ code }}"  # one body for every locale

Bodies are Jinja2 templates rendered by :class:`jinja2.sandbox.ImmutableSandboxedEnvironment`
with :class:`jinja2.StrictUndefined`: a template cannot reach Python internals or mutate
its context, values from the context are never evaluated as template code, and a
missing variable is a :class:`MissingVariable` naming it (never an empty string).

Locale fallback for ``render(slug, ctx, locale="fr_CI")``: ``fr_CI`` → ``fr`` → the
template's default locale → the library's ``default_locale`` → the ``default`` body →
the template's first body.
"""

from __future__ import annotations

import dataclasses
import operator
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from .config import line_of
from .errors import ConfigError, MessageError
from .message import SendResult

__all__ = [
    "DEFAULT",
    "MissingVariable",
    "RenderedTemplate",
    "Template",
    "TemplateError",
    "TemplateLibrary",
    "UnknownTemplate",
    "install",
    "locale_chain",
    "normalize_locale",
    "send_template",
    "template_fields",
    "templates_for",
]

DEFAULT = "default"
"""The locale key of a body used for every locale (a plain string in the YAML)."""

RESERVED_KEYS = ("folder", "default_locale")
TEMPLATE_KEYS = ("default_locale", "description")
MAX_OUTPUT = 10_000  # characters a rendering may produce (an SMS is at most a few hundred)

_SLUG = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
_LOCALE = re.compile(r"^[A-Za-z]{2,3}(?:[_-](?:[A-Za-z]{4}|[A-Za-z]{2}|[0-9]{3}))*$")
_UNDEFINED = (
    re.compile(r"^'(?P<name>[^']+)' is undefined$"),
    re.compile(r"has no attribute '(?P<name>[^']+)'$"),
    re.compile(r"has no element (?P<name>.+)$"),
)


# ---------------------------------------------------------------------- errors
class TemplateError(MessageError):
    """A template cannot be found, compiled or rendered (raised before any send)."""

    def __init__(self, message: str, *, slug: str | None = None, locale: str | None = None):
        self.slug = slug
        self.locale = locale
        super().__init__(message)


class UnknownTemplate(TemplateError):
    """No template has this slug."""


class MissingVariable(TemplateError):
    """The template uses a variable the context does not define (``.variable``)."""

    def __init__(self, message: str, *, variable: str, **kw: Any) -> None:
        self.variable = variable
        super().__init__(message, **kw)


# ---------------------------------------------------------------------- locales
def normalize_locale(value: str) -> str:
    """``fr-ci`` → ``fr_CI``, ``EN`` → ``en``, ``zh-hant-tw`` → ``zh_Hant_TW``.

    Raises ValueError for anything that is not a language tag.
    """
    text = str(value).strip()
    if text == DEFAULT:
        return DEFAULT
    if not _LOCALE.match(text):
        raise ValueError(f"not a locale: {value!r} (expected e.g. fr, fr_CI, en-GB)")
    parts = re.split(r"[_-]", text)
    out = [parts[0].lower()]
    for part in parts[1:]:
        out.append(part.title() if len(part) == 4 else part.upper())
    return "_".join(out)


def locale_chain(locale: str | None) -> list[str]:
    """``fr_CI`` → ``["fr_CI", "fr"]``; ``zh_Hant_TW`` → ``["zh_Hant_TW", "zh_Hant", "zh"]``."""
    if not locale:
        return []
    parts = normalize_locale(locale).split("_")
    return ["_".join(parts[:n]) for n in range(len(parts), 0, -1)]


# ---------------------------------------------------------------------- values
@dataclass(frozen=True)
class Template:
    """One template: a body per locale (``default`` for a locale-less body)."""

    slug: str
    bodies: Mapping[str, str]
    default_locale: str | None = None
    description: str | None = None
    source: str | None = None  # "builtin", a file or folder, or "config"

    def __post_init__(self) -> None:
        if not _SLUG.match(self.slug):
            raise ValueError(
                f"template slug {self.slug!r}: use letters, digits, '-' and '_' (max 64)"
            )
        if not self.bodies:
            raise ValueError(f"template {self.slug!r} has no body")
        bodies = {normalize_locale(k): str(v) for k, v in self.bodies.items()}
        object.__setattr__(self, "bodies", bodies)
        if self.default_locale is not None:
            default = normalize_locale(self.default_locale)
            if default not in bodies:
                raise ValueError(
                    f"template {self.slug!r}: default_locale {default!r} has no body "
                    f"(locales: {', '.join(bodies)})"
                )
            object.__setattr__(self, "default_locale", default)

    @property
    def locales(self) -> tuple[str, ...]:
        return tuple(self.bodies)


@dataclass(frozen=True)
class RenderedTemplate:
    """A rendered body, with the slug and the locale actually used."""

    slug: str
    locale: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


# ---------------------------------------------------------------------- engine
class SmsTemplateEnvironment(ImmutableSandboxedEnvironment):
    """Jinja2's immutable sandbox, strict about undefined variables, with bounded
    ``*`` and ``**`` (``{{ 'x' * 10**9 }}`` is refused instead of eating memory)."""

    intercepted_binops = frozenset({"*", "**"})

    def __init__(self) -> None:
        super().__init__(
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            trim_blocks=True,
            lstrip_blocks=True,
            keep_trailing_newline=False,
        )

    def call_binop(self, context: Any, op: str, left: Any, right: Any) -> Any:
        if op == "**" and isinstance(right, int) and abs(right) > 128:
            raise SecurityError("exponent too large in a template")
        if op == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, (str, list, tuple))
                    and isinstance(n, int)
                    and len(seq) * n > MAX_OUTPUT
                ):
                    raise SecurityError("repetition too large in a template")
        table = {"*": operator.mul, "**": operator.pow}
        return table[op](left, right)


# ---------------------------------------------------------------------- library
class TemplateLibrary:
    """Templates by slug, compiled once, rendered in the sandbox."""

    def __init__(
        self,
        templates: Iterable[Template] = (),
        *,
        default_locale: str | None = None,
        include_defaults: bool = True,
    ) -> None:
        self.env = SmsTemplateEnvironment()
        self.default_locale = normalize_locale(default_locale) if default_locale else None
        self._templates: dict[str, Template] = {}
        self._compiled: dict[tuple[str, str], jinja2.Template] = {}
        if include_defaults:
            for template in builtin_templates():
                self.add(template)
        for template in templates:
            self.add(template)

    # -- building
    def add(self, template: Template) -> Template:
        """Add (or replace, by slug) a template; compile errors raise :class:`TemplateError`."""
        compiled: dict[tuple[str, str], jinja2.Template] = {}
        for locale, body in template.bodies.items():
            try:
                compiled[(template.slug, locale)] = self.env.from_string(body)
            except jinja2.TemplateSyntaxError as exc:
                where = f" ({template.source})" if template.source else ""
                raise TemplateError(
                    f"template {template.slug!r} ({locale}){where}: syntax error line "
                    f"{exc.lineno}: {exc.message}",
                    slug=template.slug,
                    locale=locale,
                ) from None
        for key in [k for k in self._compiled if k[0] == template.slug]:
            del self._compiled[key]
        self._compiled.update(compiled)
        self._templates[template.slug] = template
        return template

    def load_folder(self, folder: str | Path, *, source: str | None = None) -> list[Template]:
        """Add every ``SLUG.txt`` / ``SLUG.LOCALE.txt`` file of ``folder``."""
        path = Path(folder)
        if not path.is_dir():
            raise ConfigError(f"template folder not found: {path}")
        templates = templates_from_files(
            ((p.name, p.read_text(encoding="utf-8")) for p in sorted(path.glob("*.txt"))),
            source=source or str(path),
        )
        for template in templates:
            self.add(template)
        return templates

    @classmethod
    def from_config(
        cls, node: Mapping[str, Any] | None, *, file: str | None = None
    ) -> TemplateLibrary:
        """Build from the ``templates:`` section of the YAML (None: defaults only).

        Errors are :class:`ConfigError` naming the file, line and key.
        """
        if node is None:
            return cls()
        if not isinstance(node, Mapping):
            raise ConfigError(
                "templates must be a mapping of slug -> bodies",
                file=file,
                line=line_of(node),
                key="templates",
            )
        default_locale = node.get("default_locale")
        try:
            library = cls(default_locale=str(default_locale) if default_locale else None)
        except ValueError as exc:
            raise ConfigError(
                str(exc),
                file=file,
                line=line_of(node, "default_locale"),
                key="templates.default_locale",
            ) from None
        folder = node.get("folder")
        if folder:
            base = Path(file).parent if file else Path.cwd()
            target = base / str(folder)
            try:
                library.load_folder(target)
            except (ConfigError, TemplateError, ValueError) as exc:
                reason = exc.reason if isinstance(exc, ConfigError) else str(exc)
                raise ConfigError(
                    reason, file=file, line=line_of(node, "folder"), key="templates.folder"
                ) from None
        for slug, spec in node.items():
            if slug in RESERVED_KEYS:
                continue
            key = f"templates.{slug}"
            line = line_of(node, slug)
            try:
                library.add(_template_from_spec(str(slug), spec, file))
            except ConfigError:
                raise
            except (TemplateError, ValueError, TypeError) as exc:
                raise ConfigError(str(exc), file=file, line=line, key=key) from None
        return library

    # -- lookup
    def __contains__(self, slug: object) -> bool:
        return slug in self._templates

    def __iter__(self) -> Iterator[Template]:
        return iter(self._templates.values())

    def __len__(self) -> int:
        return len(self._templates)

    def get(self, slug: str) -> Template:
        try:
            return self._templates[slug]
        except KeyError:
            raise UnknownTemplate(
                f"unknown template {slug!r} (templates: {', '.join(sorted(self._templates))})",
                slug=slug,
            ) from None

    def default_of(self, template: Template) -> str:
        """The locale used for ``template`` when none (or none available) is asked for."""
        if template.default_locale:
            return template.default_locale
        for candidate in (*locale_chain(self.default_locale), DEFAULT):
            if candidate in template.bodies:
                return candidate
        return next(iter(template.bodies))

    def resolve(self, slug: str, locale: str | None = None) -> str:
        """The locale key of ``slug`` that ``locale`` falls back to."""
        template = self.get(slug)
        try:
            chain = locale_chain(locale)
        except ValueError as exc:
            raise TemplateError(str(exc), slug=slug, locale=locale) from None
        for candidate in chain:
            if candidate in template.bodies:
                return candidate
        return self.default_of(template)

    def variables(self, slug: str) -> list[str]:
        """Names a template reads from its context (all locales), sorted."""
        template = self.get(slug)
        names: set[str] = set()
        for body in template.bodies.values():
            names |= meta.find_undeclared_variables(self.env.parse(body))
        return sorted(names)

    # -- rendering
    def render(
        self, slug: str, context: Mapping[str, Any] | None = None, locale: str | None = None
    ) -> RenderedTemplate:
        """Render ``slug`` for ``locale`` (with fallback) and return the text and locale used.

        Raises :class:`UnknownTemplate`, :class:`MissingVariable` or :class:`TemplateError`.
        """
        used = self.resolve(slug, locale)
        compiled = self._compiled[(slug, used)]
        values = dict(context or {})
        bad = [k for k in values if not isinstance(k, str)]
        if bad:
            raise TemplateError(f"template {slug!r}: context keys must be strings", slug=slug)
        try:
            text = compiled.render(values)
        except jinja2.UndefinedError as exc:
            name = _undefined_name(str(exc))
            raise MissingVariable(
                f"template {slug!r} ({used}): missing variable {name!r} ({exc.message})",
                variable=name,
                slug=slug,
                locale=used,
            ) from None
        except SecurityError as exc:
            raise TemplateError(
                f"template {slug!r} ({used}): unsafe operation refused by the sandbox: {exc}",
                slug=slug,
                locale=used,
            ) from None
        except Exception as exc:  # anything a template expression can raise
            raise TemplateError(
                f"template {slug!r} ({used}): rendering failed: {type(exc).__name__}: {exc}",
                slug=slug,
                locale=used,
            ) from None
        if len(text) > MAX_OUTPUT:
            raise TemplateError(
                f"template {slug!r} ({used}): rendered text is over {MAX_OUTPUT} characters",
                slug=slug,
                locale=used,
            )
        return RenderedTemplate(slug=slug, locale=used, text=text.strip())

    def __repr__(self) -> str:
        return f"<TemplateLibrary {sorted(self._templates)}>"


def _undefined_name(message: str) -> str:
    for pattern in _UNDEFINED:
        match = pattern.search(message)
        if match:
            return match.group("name").strip("'\"")
    return message


def _template_from_spec(slug: str, spec: Any, file: str | None) -> Template:
    if isinstance(spec, str):
        return Template(slug, {DEFAULT: spec}, source="config")
    if not isinstance(spec, Mapping):
        raise ValueError(
            "a template is a string, or a mapping of locale -> body "
            "(plus optional default_locale, description)"
        )
    bodies: dict[str, str] = {}
    for locale, body in spec.items():
        if locale in TEMPLATE_KEYS:
            continue
        try:
            normalized = normalize_locale(str(locale))
        except ValueError as exc:
            raise ConfigError(
                f"{exc}; template keys are locales or {', '.join(TEMPLATE_KEYS)}",
                file=file,
                line=line_of(spec, str(locale)),
                key=f"templates.{slug}.{locale}",
            ) from None
        if not isinstance(body, str):
            raise ConfigError(
                "a template body must be a string",
                file=file,
                line=line_of(spec, str(locale)),
                key=f"templates.{slug}.{locale}",
            )
        bodies[normalized] = body
    default = spec.get("default_locale")
    description = spec.get("description")
    return Template(
        slug,
        bodies,
        default_locale=str(default) if default else None,
        description=str(description) if description else None,
        source="config",
    )


def templates_from_files(files: Iterable[tuple[str, str]], *, source: str) -> list[Template]:
    """Group ``(file name, text)`` pairs named ``SLUG.txt`` / ``SLUG.LOCALE.txt``."""
    grouped: dict[str, dict[str, str]] = {}
    for name, text in files:
        stem = name[: -len(".txt")] if name.endswith(".txt") else name
        slug, _, locale = stem.partition(".")
        try:
            key = normalize_locale(locale) if locale else DEFAULT
        except ValueError:
            raise ConfigError(
                f"template file {name!r}: expected SLUG.txt or SLUG.LOCALE.txt", file=source
            ) from None
        grouped.setdefault(slug, {})[key] = text.rstrip("\n")
    out = []
    for slug, bodies in grouped.items():
        try:
            out.append(Template(slug, bodies, source=source))
        except ValueError as exc:
            raise ConfigError(str(exc), file=source) from None
    return out


def builtin_templates() -> list[Template]:
    """The templates shipped in ``smsbridge/data/templates`` (verification, en and fr)."""
    folder = resources.files("smsbridge").joinpath("data", "templates")
    files = [
        (entry.name, entry.read_text(encoding="utf-8"))
        for entry in sorted(folder.iterdir(), key=lambda e: e.name)
        if entry.name.endswith(".txt")
    ]
    templates = templates_from_files(files, source="builtin")
    return [
        dataclasses.replace(t, default_locale="en") if "en" in t.bodies else t for t in templates
    ]


# ---------------------------------------------------------------------- bridge layer
def templates_for(bridge: Any) -> TemplateLibrary:
    """The bridge's :class:`TemplateLibrary` (built from ``bridge.config.templates`` once)."""
    library = getattr(bridge, "templates", None)
    if isinstance(library, TemplateLibrary):
        return library
    config = getattr(bridge, "config", None)
    library = TemplateLibrary.from_config(
        getattr(config, "templates", None), file=getattr(config, "path", None)
    )
    bridge.templates = library
    return library


def install(
    bridge: Any, templates: TemplateLibrary | Mapping[str, Any] | None = None
) -> TemplateLibrary:
    """Attach templates to ``bridge`` (``bridge.templates``): a library or a YAML-like mapping."""
    if isinstance(templates, TemplateLibrary):
        library = templates
    else:
        config = getattr(bridge, "config", None)
        library = TemplateLibrary.from_config(templates, file=getattr(config, "path", None))
    bridge.templates = library
    return library


def template_fields(rendered: RenderedTemplate, fields: Mapping[str, Any]) -> dict[str, Any]:
    """Message fields for a templated send: the slug and the locale used go with the
    message (:attr:`OutgoingMessage.template`, :attr:`OutgoingMessage.locale`), and the
    store keeps them."""
    out = dict(fields)
    out.setdefault("template", rendered.slug)
    out.setdefault("locale", rendered.locale)
    return out


def send_template(
    bridge: Any,
    to: str,
    slug: str,
    context: Mapping[str, Any] | None = None,
    locale: str | None = None,
    **fields: Any,
) -> SendResult:
    """Render ``slug`` and send it with ``bridge.send`` (the normal send lifecycle).

    ``fields`` are the message fields of :meth:`Bridge.send` (phone, sender, tag, ...).
    Template errors raise before anything is sent.
    """
    rendered = templates_for(bridge).render(slug, context, locale)
    result: SendResult = bridge.send(to, rendered.text, **template_fields(rendered, fields))
    return result
