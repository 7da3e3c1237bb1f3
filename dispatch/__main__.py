"""`python -m dispatch`: the `dispatch` command, where its script is not on the PATH."""
from dispatch.cli.main import app

app(prog_name="dispatch")
