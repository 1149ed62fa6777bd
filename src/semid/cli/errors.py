"""How the ``semid`` command line fails: one ``error: ...`` line and exit code 2, never a traceback box.

Covers click/typer usage errors (unknown option, bad value, missing argument) and any SemidError a command
lets through. ``--debug`` anywhere on the command line (or ``SEMID_DEBUG=1``) re-raises instead, so the
traceback shows.
"""

from __future__ import annotations

import os
import sys
import traceback

import typer
from typer.core import TyperGroup

try:  # recent typer vendors click as typer._click; its commands raise those exception classes
    from typer._click import exceptions as _exc
except ImportError:  # older typer runs on the click package
    from click import exceptions as _exc

from semid.errors import SemidError

DEBUG_FLAG = "--debug"


def debugging() -> bool:
    return os.environ.get("SEMID_DEBUG", "") not in ("", "0")


def _say(msg: str) -> None:
    typer.echo(f"error: {msg}", err=True)


class SemidGroup(TyperGroup):
    """The top-level ``semid`` group: strips ``--debug``, then runs the command and reports failures."""

    def main(self, args=None, prog_name=None, complete_var=None, standalone_mode=True, **extra):
        args = list(sys.argv[1:] if args is None else args)
        if DEBUG_FLAG in args:
            args = [a for a in args if a != DEBUG_FLAG]
            os.environ["SEMID_DEBUG"] = "1"
        try:
            rv = super().main(args=args, prog_name=prog_name or "semid", complete_var=complete_var,
                              standalone_mode=False, **extra)
        except _exc.NoArgsIsHelpError as e:
            typer.echo(e.ctx.get_help())
            code = 2
        except _exc.UsageError as e:
            if debugging():
                raise
            cmd = e.ctx.command_path if e.ctx is not None else "semid"
            _say(f"{e.format_message()} (see '{cmd} --help')")
            code = 2
        except _exc.ClickException as e:
            if debugging():
                raise
            _say(e.format_message())
            code = e.exit_code
        except typer.Abort:
            _say("aborted")
            code = 1
        except SemidError as e:
            if debugging():
                traceback.print_exc()
            _say(str(e))
            code = 2
        else:
            code = rv if isinstance(rv, int) else 0
        if not standalone_mode:
            return code
        sys.exit(code)
