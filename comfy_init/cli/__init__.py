"""The click CLI for every subcommand but the PID-1 path: parsing only.

A file per subcommand, a package per group; groups and commands are imported only when named
(`LazyGroup`), so `comfy-init health` never imports the instance commands. Commands call
operations in comfy_init.ops, which return Results, and hand them to `finish`; every
ComfyInitError becomes an exit code and one rendering in `LazyGroup.invoke`, the one place that
does so. `comfy-init run` normally never gets here: __main__ hands it to comfy_init.boot first.
"""
