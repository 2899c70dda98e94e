"""The Typer application and the one place where errors become a one-line message and exit code."""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping
from typing import Any

import typer
from rich.console import Console

from kemp_kg.schema import GraphFileError, OutputPathError, interrupt_note
from kemp_model.errors import KempModelError

app = typer.Typer(
    name="kemp-model",
    help="Train, evaluate and talk to KEMP models from emotional context graph files.\n\n"
    "\b\nExample: kemp-model train --graphs out.arrow --preset kemp --out runs/kemp",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # plain click help: real defaults and choices, no "<bool>" markers
)
console = Console(stderr=True)


def _version(value: bool) -> None:
    if value:
        from kemp_model import __version__

        print(f"kemp-model {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Options of `kemp-model` itself (its help text is the ``help`` given to ``typer.Typer``)."""


def per_preset(values: Mapping[str, Any], show: Callable[[Any], str] = str) -> str:
    """A help-text default that differs by preset: ``[default: 0; beam, topk: 3]`` (the value
    most presets share first, then the others by value); one value: ``[default: 5]``."""
    groups: dict[str, list[str]] = {}
    for name, value in values.items():
        groups.setdefault(show(value), []).append(name)
    common = max(groups, key=lambda key: len(groups[key]))
    rest = "; ".join(f"{', '.join(names)}: {v}" for v, names in groups.items() if v != common)
    return f"[default: {common}{'; ' + rest if rest else ''}]"


def main() -> None:
    """Console-script entry point: run the app, mapping user errors to one line and an exit code."""
    import kemp_model.cli  # noqa: F401  (registers every command module)

    try:
        status = app(standalone_mode=False)
    except KempModelError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except (GraphFileError, OutputPathError) as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # disk full, permission denied, ...: environmental, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        console.print(
            f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except KeyboardInterrupt:  # raised outside typer's command call (e.g. while importing)
        status = 130
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort as exc:
        status = 130 if isinstance(exc.__cause__, KeyboardInterrupt) else 1
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        # typer >= 0.16 vendors its own click (typer._click): its usage errors are not
        # click.ClickException but share typer.exceptions.TyperException as base.
        vendored = getattr(getattr(typer, "exceptions", None), "TyperException", ())
        if isinstance(exc, (click.exceptions.ClickException, vendored)) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise
    # typer turns Ctrl-C inside a command into `Exit(130)`, which standalone_mode=False RETURNS
    # (as it returns any `typer.Exit(code)`): the status must be passed on, or a script chaining
    # commands takes an interrupted run for a success.
    if status == 130:
        console.print(interrupt_note(sys.argv), highlight=False, soft_wrap=True)
    if isinstance(status, int) and status:
        sys.exit(status)
