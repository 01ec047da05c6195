"""comfy-init: run several ComfyUI instances on one shared data directory.

The package keeps its import cheap: `comfy-init run` is a container's PID 1 and must have its
signal handlers in place before anything slow is imported.
"""

__version__ = "0.1.0"
