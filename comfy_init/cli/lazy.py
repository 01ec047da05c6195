"""Click groups whose subcommands are imported on first use, and the one error boundary."""

import importlib

import click

from comfy_init.errors import ComfyInitError
from comfy_init.results import Result, render


class LazyGroup(click.Group):
    """`commands_by_name` maps a subcommand name to "module:attribute"."""

    def __init__(self, *args, lazy_commands=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.lazy_commands = dict(lazy_commands or {})

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy_commands))

    def get_command(self, ctx, name):
        if name in self.lazy_commands:
            module_name, attribute = self.lazy_commands[name].split(":")
            return getattr(importlib.import_module(module_name), attribute)
        return super().get_command(ctx, name)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        # The deepest group resolves last: "registry show", for the envelope of an error.
        ctx.find_root().meta["comfy_init.command"] = " ".join(ctx.command_path.split()[1:] + [name])
        return name, command, rest

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except ComfyInitError as error:
            command = ctx.find_root().meta.get("comfy_init.command", ctx.info_name)
            as_json = bool(ctx.find_root().meta.get("comfy_init.json"))
            ctx.exit(render(Result.failure(command, error), as_json=as_json))
