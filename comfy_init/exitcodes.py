"""Exit codes, as sysexits.h names them. The README's table says what each means for a user."""

OK = 0
FAILED = 1
USAGE = 64
DATAERR = 65
NOINPUT = 66
CANTCREAT = 73
IOERR = 74
TEMPFAIL = 75
NOPERM = 77
CONFIG = 78
