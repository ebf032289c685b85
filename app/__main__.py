"""`python -m app` and the `rua` console command.

Kept free of imports on purpose: worker processes started by the parallel parser re-import
the main module, and should not pay for the whole web app each time.
"""


def main() -> None:
    from app.cli import cli

    cli()


if __name__ == "__main__":
    main()
