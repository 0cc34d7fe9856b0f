"""Routing: which phones to try for a message, in which order.

Routes are tried in file order and the first whose ``match`` holds wins (all matchers
given in one route must hold). Within the route, the strategy orders its phones:
``failover`` (as written), ``round_robin`` (rotating start), ``random`` (shuffled) or
``weighted`` (weighted random order, without replacement). Phones that cannot carry the
message (capabilities, countries, sender) are skipped. With no routes at all, every phone
is tried in the order of the file.
"""

from __future__ import annotations

import math
import random
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .config import STRATEGIES, RouteConfig
from .errors import ConfigError, MessageError, RoutingError
from .message import OutgoingMessage
from .numbers import country_of
from .phone import Phone

__all__ = ["RouteDecision", "Router"]


@dataclass(frozen=True)
class RouteDecision:
    """The phones to try, in order, and why the others of the route were skipped."""

    phones: tuple[str, ...]
    route: RouteConfig | None
    skipped: Mapping[str, str]

    @property
    def resend_ambiguous(self) -> bool:
        return bool(self.route and self.route.resend_ambiguous)


class Router:
    def __init__(
        self,
        routes: Sequence[RouteConfig],
        phones: Mapping[str, Phone],
        *,
        rng: random.Random | None = None,
    ) -> None:
        self.routes = tuple(routes)
        for route in self.routes:
            if route.strategy not in STRATEGIES:
                raise ConfigError(
                    f"unknown strategy '{route.strategy}' in {route.label} "
                    f"(one of {', '.join(STRATEGIES)})",
                    line=route.line,
                )
            if not route.phones:
                raise ConfigError(f"{route.label} has no phones", line=route.line)
            unknown = [p for p in route.phones if p not in phones]
            if unknown:
                raise ConfigError(
                    f"{route.label} names unknown phone(s) {', '.join(unknown)} "
                    f"(phones: {', '.join(phones)})",
                    line=route.line,
                )
        self.phones = phones
        self._rng = rng or random.Random()
        self._turns = {id(r): 0 for r in self.routes}  # round_robin: messages routed so far
        self._lock = threading.RLock()

    def matching_route(self, message: OutgoingMessage, to: str) -> RouteConfig | None:
        country = country_of(to)
        for route in self.routes:
            m = route.match
            if m.recipients is not None and to not in m.recipients:
                continue
            if m.prefixes is not None and not any(to.startswith(p) for p in m.prefixes):
                continue
            if m.countries is not None and country not in m.countries:
                continue
            if m.tags is not None and message.tag not in m.tags:
                continue
            return route
        return None

    def decide(self, message: OutgoingMessage, to: str, *, peek: bool = False) -> RouteDecision:
        """Order the phones for ``message`` (``to`` already in E.164).

        ``peek=True`` answers what the next message would get without moving the
        strategy's state (the round-robin turn, the random generator): for
        ``bridge.route()`` and other dry runs.

        Raises :class:`RoutingError` when no route matches or no matching phone can
        carry the message (the reasons are listed).
        """
        if self.routes:
            route = self.matching_route(message, to)
            if route is None:
                raise RoutingError(
                    f"no route matches {to} (tag={message.tag!r}); add a default route "
                    "(a route without 'match:')"
                )
            ordered = self._order(route, peek=peek)
        else:
            route = None
            ordered = list(self.phones)
        chosen: list[str] = []
        skipped: dict[str, str] = {}
        for name in ordered:
            problem: MessageError | None = self.phones[name].check_message(message, to)
            if problem is None:
                chosen.append(name)
            else:
                skipped[name] = str(problem)
        if not chosen:
            where = route.label if route else "any phone"
            reasons = "; ".join(f"{n}: {r}" for n, r in skipped.items())
            raise RoutingError(f"no phone of {where} can carry this message ({reasons})")
        return RouteDecision(tuple(chosen), route, skipped)

    def _order(self, route: RouteConfig, *, peek: bool = False) -> list[str]:
        """The route's phones in the order its strategy gives (``failover``: as written)."""
        phones = list(route.phones)
        if route.strategy == "round_robin":
            with self._lock:
                turn = self._turns[id(route)]
                if not peek:
                    self._turns[id(route)] = turn + 1
            start = turn % len(phones)
            return phones[start:] + phones[:start]
        if route.strategy in ("random", "weighted"):
            with self._lock:
                state = self._rng.getstate() if peek else None
                try:
                    if route.strategy == "random":
                        self._rng.shuffle(phones)
                        return phones
                    return self._weighted(phones, route.weights)
                finally:
                    if state is not None:
                        self._rng.setstate(state)
        return phones

    def _weighted(self, phones: list[str], weights: Mapping[str, float]) -> list[str]:
        remaining = [(p, _weight(weights.get(p, 0.0))) for p in phones]
        ordered: list[str] = []
        with self._lock:
            while remaining:
                total = sum(w for _, w in remaining)
                if total <= 0:
                    ordered.extend(p for p, _ in remaining)  # zero weights go last, in order
                    break
                pick = self._rng.uniform(0, total)
                acc = 0.0
                for i, (p, w) in enumerate(remaining):
                    acc += w
                    if pick <= acc and w > 0:
                        ordered.append(p)
                        del remaining[i]
                        break
                else:  # float edge: take the last positive
                    i = max(i for i, (_, w) in enumerate(remaining) if w > 0)
                    ordered.append(remaining.pop(i)[0])
        return ordered


def _weight(value: float) -> float:
    """Negative, NaN and infinite weights (possible from Python, refused in YAML) count 0."""
    return value if math.isfinite(value) and value > 0 else 0.0
