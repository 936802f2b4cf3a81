"""An ordinary module without a `# %%` marker line: never collected or run as a notebook."""

raise SystemExit("helper.py must not be executed by `pytest --nbmemo`")
