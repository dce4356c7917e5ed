"""The conveyor command line: sync Airtable bases into a warehouse, in this process or on workers.

Exit codes: 0 succeeded, 1 failed or an error, 2 records rejected, 3 cancelled, 4 skipped,
5 still running after --timeout.
"""

from __future__ import annotations

import sys

import typer

from app.errors import ConveyorError
from broker.cli import check, demo, local, metrics, plugins, remote, schedules

# Locals in a traceback could include a URL with its password.
cli = typer.Typer(no_args_is_help=True, add_completion=False, help=__doc__,
                  pretty_exceptions_show_locals=False, rich_markup_mode=None)
local.register(cli)
remote.register(cli)
demo.register(cli)
schedules.register(cli)
check.register(cli)
metrics.register(cli)
plugins.register(cli)


def import_user_modules() -> None:
    """Import CONVEYOR_IMPORTS, so the user's extractors and workflows are registered here too."""
    import importlib

    from app.settings import get_settings

    for module in (get_settings().conveyor_imports or "").split(","):
        if module.strip():
            importlib.import_module(module.strip())


def unreachable(exc: BaseException) -> str | None:
    """One line for a broker that does not answer (None if ``exc`` is something else)."""
    import kombu.exceptions
    import redis

    if not isinstance(exc, (redis.ConnectionError, redis.TimeoutError, kombu.exceptions.OperationalError,
                            ConnectionError)):
        return None
    from app.redact import mask_url
    from app.settings import get_settings

    detail = " ".join(str(exc).split()) or type(exc).__name__
    return (f"cannot reach the broker at CELERY_BROKER_URL {mask_url(get_settings().celery_broker_url)}: "
            f"{detail}")


def main() -> None:
    """Entry point: any ConveyorError or unreachable service becomes one line on standard error."""
    from pydantic import ValidationError

    from broker import logs

    try:
        logs.configure()
        import_user_modules()
        # Outside standalone mode click returns an Exit's code instead of exiting.
        code = cli(standalone_mode=False, prog_name="conveyor")
        if isinstance(code, int) and code:
            sys.exit(code)
    except ConveyorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        sys.exit(1)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])).upper()}: {e['msg']}" for e in exc.errors())
        print(f"error: invalid settings: {problems}", file=sys.stderr)
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
        line = unreachable(exc)
        if line is None:
            raise
        print(f"error: {line}", file=sys.stderr)
        sys.exit(1)
