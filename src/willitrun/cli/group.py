"""The typer application: a group whose commands load on demand, with `estimate` as the default
command, one-line errors and the documented exit codes.

Each command lives in cli/commands/<name>.py as a one-command typer app; only the command that runs
is imported (and built), so `willitrun check ...` does not pay for `sweep`'s options.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence
from typing import Any, Optional

import typer

# typer ships its own copy of click (typer._click, typed); never the `click` distribution (STYLE).
from typer._click.exceptions import ClickException as _ClickException
from typer.core import TyperGroup

from ..errors import ExitCode, WillItRunError
from .registry import COMMANDS, DEFAULT_COMMAND, report

ROOT_OPTIONS = {"-h", "--help", "-V", "--version", "--install-completion", "--show-completion"}


class WillitrunGroup(TyperGroup):
    """Lazy commands; `willitrun MODEL ...` and `willitrun -q MODEL ...` run `estimate`; every error
    is one line and maps to the documented exit codes, whether run as a script or by CliRunner."""

    def list_commands(self, ctx: Any) -> list[str]:
        return list(COMMANDS)

    def get_command(self, ctx: Any, name: str) -> Any:
        if name not in COMMANDS:
            return None
        module = importlib.import_module(f"{__package__}.commands.{name.replace('import', 'import_')}")
        command = typer.main.get_command(module.app)
        command.name = name
        for param in command.params:
            _plain_argument(param)
            _complete(param)
        return command

    def format_commands(self, ctx: Any, formatter: Any) -> None:
        with formatter.section("Commands"):
            formatter.write_dl(list(COMMANDS.items()))

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        # Options may come before the model: only the root's own options stay at the root.
        if args and args[0] not in COMMANDS and args[0] not in ROOT_OPTIONS:
            args = [DEFAULT_COMMAND, *args]
        if len(args) == 2 and args[0] in COMPLETION_OPTIONS and args[1] in SHELLS:
            _completion(args[0], args[1], ctx.find_root().info_name or "willitrun")
        return super().parse_args(ctx, args)

    def shell_complete(self, ctx: Any, incomplete: str) -> list[Any]:
        """The commands, and the model ids: `willitrun lla<TAB>` is the estimate command's MODEL."""
        from typer._click.shell_completion import CompletionItem  # typer's own click (STYLE: never `click`)

        from .options import complete_model

        items: list[Any] = super().shell_complete(ctx, incomplete)
        if incomplete and not incomplete.startswith("-"):
            items += [CompletionItem(m) for m in complete_model(incomplete)]
        return items

    def main(
        self,
        args: Optional[Sequence[str]] = None,
        prog_name: Optional[str] = None,
        complete_var: Optional[str] = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            rv = super().main(
                args=args,
                prog_name=prog_name,
                complete_var=complete_var,
                standalone_mode=False,
                windows_expand_args=windows_expand_args,
                **extra,
            )
            code = rv if isinstance(rv, int) else 0
        except WillItRunError as exc:
            code = report(exc)
        except _ClickException as exc:  # bad option or argument: one line, exit 2
            from ..render import error

            message = exc.format_message()
            if type(exc).__name__ == "NoArgsIsHelpError":  # `willitrun` alone: the help, as it is
                sys.stderr.write(message + "\n")
            else:
                error(" ".join(message.split()))
            code = int(ExitCode.USAGE)
        except typer.Abort:  # end of input at a prompt, Ctrl-C
            code = 130
        if standalone_mode:
            sys.exit(code)
        return code


COMPLETION_OPTIONS = ("--install-completion", "--show-completion")
SHELLS = ("bash", "zsh", "fish", "powershell", "pwsh")


def _completion(option: str, shell: str, prog_name: str) -> None:
    """`--install-completion zsh` / `--show-completion zsh`: the shell named, not the one typer detects
    (typer's flags take no value when shellingham is installed, and `zsh` was then ignored: the
    detected shell's script was installed instead)."""
    from typer._completion_shared import get_completion_script, install

    complete_var = "_{}_COMPLETE".format(prog_name.replace("-", "_").upper())
    if option == "--show-completion":
        sys.stdout.write(get_completion_script(prog_name=prog_name, complete_var=complete_var, shell=shell) + "\n")
    else:
        name, path = install(shell=shell, prog_name=prog_name, complete_var=complete_var)
        sys.stdout.write(
            f"{name} completion installed in {path}\nCompletion will take effect once you restart the terminal\n"
        )
    raise typer.Exit(0)


# What the shell completes, by parameter name, on every command however its options are declared:
# catalog model and GPU ids (`--gpu 2xrtx<TAB>` keeps the count) and engine names (cli/options.py).
COMPLETED = {
    "model": "complete_model",
    "models": "complete_model",
    "gpu": "complete_gpu",
    "count": "complete_gpu",
    "engine": "complete_engine",
}


def _complete(param: Any) -> None:
    """Give `param` its completion when its name is in COMPLETED (the catalog is read only when the
    shell asks). Replaced on the instance, as _plain_argument does: typer has no per-name hook."""
    if param.name not in COMPLETED:
        return
    from . import options

    values = getattr(options, COMPLETED[param.name])

    def shell_complete(ctx: Any, incomplete: str) -> list[Any]:
        from typer._click.shell_completion import CompletionItem  # typer's own click (STYLE: never `click`)

        return [CompletionItem(v) for v in values(incomplete)]

    param.shell_complete = shell_complete


def _plain_argument(param: Any) -> None:
    """Show an argument as its metavar (`MODEL`, `[PATH]...`), not typer's `{MODEL}` and `<list[str]>`.

    typer has no option for this, so the two display methods are replaced on the instance; if a
    typer release renames them, help falls back to typer's own display and nothing else changes."""
    if getattr(param, "param_type_name", "") != "argument" or param.metavar is None:
        return
    if hasattr(param, "_usage_display_name"):
        param._usage_display_name = lambda: param.metavar
    if hasattr(param, "display_type_rich"):
        param.display_type_rich = lambda ctx: None


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        sys.stdout.write(f"willitrun {__version__}\n")
        raise typer.Exit(0)


app = typer.Typer(
    cls=WillitrunGroup,
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback()
def _root(
    version: Optional[bool] = typer.Option(
        None, "--version", "-V", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Will this model run on this GPU? Memory for weights, KV cache (self and cross attention),
    activations and overhead, with the verdict and the largest context that fits.

    Run `willitrun MODEL --gpu GPU`; options may come before or after MODEL. See
    `willitrun estimate -h` for every option and `willitrun docs` for the documentation."""
