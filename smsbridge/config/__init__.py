"""YAML configuration: the loader (:mod:`.loader`), the model of phones and routes
(:mod:`.model`), pydantic-validated sections and phone options (:mod:`.sections`), and
the ``queue:`` section (:mod:`.queue`).

Every problem is a :class:`~smsbridge.errors.ConfigError` naming the file, the line and
the key, raised before anything is sent. Values are never echoed in errors.
"""

from .loader import (
    Node,
    NodeList,
    closest,
    interpolate,
    line_of,
    load_yaml,
    read_text,
    resolve_path,
    suggest,
    to_node,
)
from .model import (
    FORWARD_KEYS,
    MATCH_KEYS,
    ROUTE_KEYS,
    SECTIONS,
    STRATEGIES,
    TOP_LEVEL_KEYS,
    WEBHOOK_KEYS,
    Config,
    ForwardTarget,
    PhoneConfig,
    RouteConfig,
    RouteMatch,
    WebhooksConfig,
    load_config,
    parse_config,
)
from .queue import QUEUE_KEYS, QueueSettings, load_with_queue, parse_queue_settings
from .sections import validate_options, validate_section

__all__ = [
    "FORWARD_KEYS",
    "MATCH_KEYS",
    "QUEUE_KEYS",
    "ROUTE_KEYS",
    "SECTIONS",
    "STRATEGIES",
    "TOP_LEVEL_KEYS",
    "WEBHOOK_KEYS",
    "Config",
    "ForwardTarget",
    "Node",
    "NodeList",
    "PhoneConfig",
    "QueueSettings",
    "RouteConfig",
    "RouteMatch",
    "WebhooksConfig",
    "closest",
    "interpolate",
    "line_of",
    "load_config",
    "load_with_queue",
    "load_yaml",
    "parse_config",
    "parse_queue_settings",
    "read_text",
    "resolve_path",
    "suggest",
    "to_node",
    "validate_options",
    "validate_section",
]
