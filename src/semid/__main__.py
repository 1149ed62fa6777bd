"""``python -m semid ...``: the ``semid`` command line (what ``torchrun -m semid run ...`` starts per rank)."""

from semid.cli.main import app

if __name__ == "__main__":
    app(prog_name="semid")
