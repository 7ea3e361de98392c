"""The ``sendkit-async`` command: the root group and its commands, each in a module of its own.

* :mod:`._runner`: settings, the client, exit codes.
* :mod:`._dnc`, :mod:`._inbox`: the API's commands.
* :mod:`._fake`, :mod:`._demo`: the fake server and the demo (the only ones that load the fake).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import click

from ._demo import demo, write_sample
from ._dnc import dnc
from ._fake import fake_server
from ._inbox import inbox
from ._runner import Settings

__all__ = ["cli", "write_sample"]


class _Root(click.Group):
    """The root group: its options are taken anywhere on the line, before or after the command.

    ``sendkit-async dnc import f.csv --fake`` means ``sendkit-async --fake dnc
    import f.csv``: the root's options are moved ahead of the command before
    click parses (no command has an option of the same name; a test keeps it
    so). ``--`` ends the options, as everywhere.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        return super().parse_args(ctx, self._hoisted(args))

    def _hoisted(self, args: list[str]) -> list[str]:
        takes_value = {
            name: not (isinstance(param, click.Option) and param.is_flag)
            for param in self.params
            for name in (*param.opts, *param.secondary_opts)
            if name.startswith("--")
        }
        ahead, rest = [], []
        words = iter(args)
        seen_command = False
        for arg in words:
            if arg == "--":
                rest += [arg, *words]
                break
            name = arg.split("=", 1)[0]
            if name in takes_value:
                ahead.append(arg)
                if takes_value[name] and "=" not in arg:
                    ahead.extend(itertools.islice(words, 1))
            elif seen_command or not arg.startswith("-"):
                seen_command = True
                rest.append(arg)
            else:
                ahead.append(arg)  # --help, --version: the root's own, before the command
        return ahead + rest


@click.group(cls=_Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--api-key-file", type=click.Path(dir_okay=False, path_type=Path), help="read the API key from this file"
)
@click.option("--base-url", help="API base URL (default: SENDKIT_BASE_URL or https://api.sendkit.ai)")
@click.option("--workspace-id", help="workspace, with a platform key (default: SENDKIT_WORKSPACE_ID)")
@click.option("--fake", is_flag=True, help="run against an in-process fake SendKit server")
@click.option("--debug", is_flag=True, help="tracebacks and request logs (the key is never logged)")
@click.option(
    "--redis",
    "redis_url",
    envvar="SENDKIT_REDIS_URL",
    metavar="URL",
    help="share one rate budget through this Redis with every process on the key (or SENDKIT_REDIS_URL)",
)
@click.version_option(package_name="sendkit-async")
@click.pass_context
def cli(
    ctx: click.Context,
    api_key_file: Path | None,
    base_url: str | None,
    workspace_id: str | None,
    fake: bool,
    debug: bool,
    redis_url: str | None,
) -> None:
    """SendKit from the command line: DNC imports, listings and inbox operations.

    The key comes from SENDKIT_API_KEY or --api-key-file and is never printed.
    """
    ctx.obj = Settings(api_key_file, base_url, workspace_id, fake, debug, redis_url)


for command in (dnc, inbox, fake_server, demo):
    cli.add_command(command)
