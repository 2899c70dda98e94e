"""The Typer application and the one place where errors become a one-line message and exit code."""

from __future__ import annotations

import sys

import typer
from rich.console import Console

from kemp_kg.schema import GraphFileError
from kemp_model.errors import KempModelError

app = typer.Typer(
    name="kemp-model",
    help="Train, evaluate and talk to KEMP models from emotional context graph files.\n\n"
    "Example: kemp-model train --graphs out.arrow --preset kemp --out runs/kemp",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console(stderr=True)


def main() -> None:
    """Console-script entry point: run the app, mapping user errors to one line and an exit code."""
    import kemp_model.cli  # noqa: F401  (registers every command module)

    try:
        app(standalone_mode=False)
    except KempModelError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(exc.exit_code)
    except GraphFileError as exc:
        console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except OSError as exc:  # disk full, permission denied, ...: environmental, not a bug
        where = f"{exc.filename}: " if exc.filename else ""
        console.print(
            f"[bold red]error:[/] {where}{exc.strerror or exc}", highlight=False, soft_wrap=True
        )
        sys.exit(1)
    except KeyboardInterrupt:
        console.print("[bold red]interrupted[/]: checkpoints under their final names are intact")
        sys.exit(130)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except typer.Abort:
        sys.exit(1)
    except Exception as exc:  # click usage errors arrive here in non-standalone mode
        import click

        # typer >= 0.16 vendors its own click (typer._click): its usage errors are not
        # click.ClickException but share typer.exceptions.TyperException as base.
        vendored = getattr(getattr(typer, "exceptions", None), "TyperException", ())
        if isinstance(exc, (click.exceptions.ClickException, vendored)) and hasattr(exc, "show"):
            exc.show()
            sys.exit(getattr(exc, "exit_code", 2))
        raise
