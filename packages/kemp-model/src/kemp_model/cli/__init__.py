"""The `kemp-model` command: a thin Typer layer over the library (one module per command group).

Each command module registers its commands on :data:`kemp_model.cli.app.app`; importing them here
is what makes them part of the command.
"""

# Command modules (each registers on `app` at import).
from kemp_model.cli import (
    chat,  # noqa: F401,E402
    evaluate,  # noqa: F401,E402
    train,  # noqa: F401,E402
)
from kemp_model.cli.app import app, main  # noqa: F401
