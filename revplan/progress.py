"""Progress for long steps: a rich status line on a terminal, quiet in CI.

    with Steps() as steps:
        steps.start("generating sample company")
        ...
        steps.start("running plans")

Each finished step prints one line with its duration, on stderr, so the
output on stdout stays clean for piping.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable

from rich.console import Console


class Steps:
    """`stopped` says whether a signal asked the command to stop: then a step that ends in any error
    (DuckDB turns the interrupt into its own "Query interrupted") was stopped, not failed."""

    def __init__(self, quiet: bool | None = None, stopped: Callable[[], bool] = lambda: False):
        self.stopped = stopped
        self.console = Console(stderr=True)
        interactive = self.console.is_terminal and not os.environ.get("CI")
        self.quiet = (not interactive) if quiet is None else quiet
        self._status = None
        self._name: str | None = None
        self._started = 0.0

    def __enter__(self) -> Steps:
        return self

    def __exit__(self, *exc) -> None:
        stopped = exc[0] is not None and (issubclass(exc[0], KeyboardInterrupt) or self.stopped())  # not failures
        self._finish(ok=exc[0] is None, mark="stopped" if stopped else None)

    def __call__(self, name: str) -> None:
        self.start(name)

    def start(self, name: str) -> None:
        self._finish(ok=True)
        self._name, self._started = name, time.perf_counter()
        if not self.quiet:
            self._status = self.console.status(name + " ...")
            self._status.start()

    def detail(self, text: str) -> None:
        """Where the current step is (which plan of six), on its live line: a terminal only, never logged."""
        if self._status is not None:
            self._status.update(f"{self._name}: {text} ...")

    def _finish(self, ok: bool, mark: str | None = None) -> None:
        if self._name is None:
            return
        if self._status is not None:
            self._status.stop()
            self._status = None
        elapsed = time.perf_counter() - self._started
        mark = mark or ("done" if ok else "failed")
        print(f"  {self._name}: {mark} in {elapsed:.1f} s", file=sys.stderr)
        self._name = None
