"""The Workflow contract: run(), its hooks, and steps that can also run as distributed tasks."""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

log = logging.getLogger(__name__)

F = TypeVar("F", bound=Callable[..., Any])

STEP_ATTRIBUTE = "__conveyor_step__"


@dataclass(frozen=True)
class StepInfo:
    """How a workflow method runs when distributed: its name and the queue it runs on."""

    name: str
    queue: str


def step(queue: str = "load") -> Callable[[F], F]:
    """Mark a workflow method as a step.

    Steps run in definition order; each receives the JSON-serialisable result of the previous
    step (None for the first), so a distributed run can chain them as tasks on ``queue``.
    """

    def mark(method: F) -> F:
        setattr(method, STEP_ATTRIBUTE, StepInfo(name=method.__name__, queue=queue))
        return method

    return mark


class Workflow:
    """A controller that runs steps in order (Arkalos' Workflow, with errors re-raised).

    Subclasses either override ``run()`` or mark methods with ``@step`` and inherit a ``run()``
    that chains them. ``execute()`` wraps ``run()`` with the hooks and logs start, duration and
    errors; unlike Arkalos it re-raises, so a failure is never hidden from a caller or a queue.
    """

    #: The name a distributed run uses to find this workflow in the registry.
    workflow_name: ClassVar[str] = ""

    def before_run(self) -> None:
        """Called by ``execute()`` before ``run()``."""

    def after_run(self) -> None:
        """Called by ``execute()`` after a successful ``run()``."""

    # Arkalos compatibility aliases; internal code only ever calls the snake_case names.
    onBeforeRun = before_run  # noqa: N815
    onAfterRun = after_run  # noqa: N815

    @classmethod
    def name(cls) -> str:
        """The registry name of this workflow."""
        return cls.workflow_name or cls.__name__

    @classmethod
    def steps(cls) -> list[StepInfo]:
        """The methods marked with ``@step``, in definition order (base classes first)."""
        found: dict[str, StepInfo] = {}
        for klass in reversed(cls.__mro__):
            for attr, value in vars(klass).items():
                info = getattr(value, STEP_ATTRIBUTE, None)
                if isinstance(info, StepInfo):
                    found.pop(attr, None)
                    found[attr] = info
        return list(found.values())

    def run_step(self, name: str, previous: Any = None) -> Any:
        """Run one step by name with the previous step's result."""
        method = getattr(self, name)
        if not isinstance(getattr(method, STEP_ATTRIBUTE, None), StepInfo):
            raise ValueError(f"{type(self).__name__}.{name} is not a @step")
        if len(inspect.signature(method).parameters) == 0:
            return method()
        return method(previous)

    def run(self, **options: Any) -> Any:
        """Run every ``@step`` in order, feeding each the previous one's result."""
        result: Any = None
        for info in self.steps():
            result = self.run_step(info.name, result)
        return result

    def execute(self, **options: Any) -> Any:
        """Run with hooks, logging start, duration and any error (which is re-raised)."""
        name = type(self).__name__
        started = time.monotonic()
        log.info("workflow %s started", name)
        try:
            self.call_hook("before_run")
            result = self.run(**options)
            self.call_hook("after_run")
        except Exception:
            log.exception("workflow %s failed after %.1f s", name, time.monotonic() - started)
            raise
        log.info("workflow %s finished in %.1f s", name, time.monotonic() - started)
        return result

    def call_hook(self, hook: str) -> None:
        """Fire ``before_run`` or ``after_run`` — the camelCase spelling if a subclass
        overrode that one (Arkalos' ``onBeforeRun``/``onAfterRun``)."""
        camel = _CAMEL_HOOKS[hook]
        if getattr(type(self), camel) is not getattr(Workflow, camel):
            getattr(self, camel)()
        else:
            getattr(self, hook)()


_CAMEL_HOOKS = {"before_run": "onBeforeRun", "after_run": "onAfterRun"}
