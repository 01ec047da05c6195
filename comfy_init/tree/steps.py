"""A step of the data tree: one path, what it must be, and what (if anything) to do about it."""

# Step kinds. "ok" means already in place; the others change the disk.
OK = "ok"
MKDIR = "mkdir"
LINK = "link"
REPLACE_EMPTY_DIR = "replace-empty-dir"
RELINK = "relink"
MOVE_ASIDE = "move-aside"
MARK_OWNER = "mark-owner"

DESCRIPTIONS = {
    OK: "already in place",
    MKDIR: "create directory",
    LINK: "create link",
    REPLACE_EMPTY_DIR: "replace empty directory with link",
    RELINK: "rewrite link",
    MOVE_ASIDE: "move aside, then link",
    MARK_OWNER: "write the instance's owner file",
}


class Step:
    __slots__ = ("kind", "path", "target", "writable")

    def __init__(self, kind, path, target=None, writable=False):
        self.kind = kind
        self.path = path
        self.target = target
        self.writable = writable

    @property
    def changes_disk(self):
        return self.kind != OK

    def describe(self):
        text = f"{DESCRIPTIONS[self.kind]:<34} {self.path}"
        return f"{text} -> {self.target}" if self.target else text

    def as_dict(self):
        return {"action": DESCRIPTIONS[self.kind], "path": self.path, "target": self.target}
