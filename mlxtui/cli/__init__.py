"""The command line: `mlxtui` and its subcommands, one module per command group.

main.py builds the parser and dispatches; each command module (train, runs, data, models,
fuse, export, eval, doctor, dashboard) adds its own subparser and runs it. Modules import
nothing heavy at the top, so `mlxtui --help` never loads MLX or Textual; the work itself is
submitted to the engine (mlxtui.core.engine) or done by core functions.
"""
