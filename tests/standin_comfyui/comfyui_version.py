# Version of the stand-in ComfyUI used by comfy-init's tests.
__version__ = "0.3.64-standin"
