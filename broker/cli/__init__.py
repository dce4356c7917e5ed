"""The ``conveyor`` command line."""

from __future__ import annotations

import logging
import sys

import typer

from app.errors import ConveyorError
from broker.cli import demo, local, plugins, remote, schedules

# Locals in a traceback could include a URL with its password.
cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__,
                  pretty_exceptions_show_locals=False)
local.register(cli)
remote.register(cli)
demo.register(cli)
schedules.register(cli)
plugins.register(cli)


def import_user_modules() -> None:
    """Import CONVEYOR_IMPORTS, so the user's extractors and workflows are registered here too."""
    import importlib

    from app.settings import get_settings

    for module in (get_settings().conveyor_imports or "").split(","):
        if module.strip():
            importlib.import_module(module.strip())


def main() -> None:
    """Entry point: any ConveyorError becomes one line on standard error and exit code 1."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        import_user_modules()
        # Outside standalone mode click returns an Exit's code instead of exiting.
        code = cli(standalone_mode=False)
        if isinstance(code, int) and code:
            sys.exit(code)
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        print("aborted", file=sys.stderr)
        sys.exit(130)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        if isinstance(exc, click.ClickException):
            exc.show()
            sys.exit(exc.exit_code)
        raise
