"""For ComfyUI releases without --base-directory (before v0.3.13): links inside the checkout.

Such a release reads and writes the folders inside its own checkout, so they become links to the
instance's folders. The image's own folders in the way are moved aside (renamed
`<name>.image-original`), never deleted. A checkout whose links already lead to ANOTHER instance is
refused: the two would write each other's folders.
"""

import os

from comfy_init.errors import DataError
from comfy_init.layout import COMPAT_FOLDERS
from comfy_init.problems import Problem
from comfy_init.tree.steps import LINK, MOVE_ASIDE, OK, RELINK, Step


def plan_checkout_links(checkout, instance):
    if checkout.base_directory:
        return []
    steps, problems = [], []
    for name in COMPAT_FOLDERS:
        path = os.path.join(checkout.path, name)
        target = instance.folder(name)
        if os.path.islink(path):
            current = os.readlink(path)
            if current == target:
                steps.append(Step(OK, path, target))
            elif not instance.compat and _other_instance(current, target):
                problems.append(Problem(
                    "shared-folder", f"links to {current!r}, the folder of another instance: this ComfyUI "
                    f"release (no --base-directory) serves one instance per checkout", path=path,
                    fix=f"give instance {instance.id!r} its own ComfyUI checkout (its own container), or "
                        "remove these links if that other instance no longer uses this checkout"))
            else:
                steps.append(Step(RELINK, path, target))
        elif os.path.lexists(path):
            steps.append(Step(MOVE_ASIDE, path, target))
        else:
            steps.append(Step(LINK, path, target))
    if problems:
        raise DataError(*problems)
    return steps


def _other_instance(current, ours):
    """`current` (a link target in the checkout) is the same folder of a different instance."""
    return (os.path.basename(current) == os.path.basename(ours)
            and os.path.dirname(os.path.dirname(current)) == os.path.dirname(os.path.dirname(ours))
            and current != ours)
