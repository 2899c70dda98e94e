"""The `kemp-kg` command: a thin Typer layer over the library (one module per command group).

Each command module registers its commands on :data:`kemp_kg.cli.app.app`; importing them here is
what makes them part of the command.
"""

# Command modules (each registers on `app` at import).
from kemp_kg.cli import (
    download,  # noqa: F401,E402
    enrich,  # noqa: F401,E402
    index,  # noqa: F401,E402
    inspect,  # noqa: F401,E402
    sample,  # noqa: F401,E402
)
from kemp_kg.cli.app import app, main  # noqa: F401
