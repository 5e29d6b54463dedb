"""trainwiz: plan, fit, launch and watch DDP/FSDP training runs from the terminal.

The package root stays empty on purpose: `import trainwiz` must cost nothing, so that the CLI
and the app start fast. Import the subpackage you need.
"""

__version__ = "0.1.0"
