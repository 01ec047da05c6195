"""Exit codes, as sysexits.h names them. The README's table says what each means for a user."""

OK = 0
FAILED = 1
BAD_OPTION = 2  # click's usage error: an unknown option, a bad option value
USAGE = 64
DATAERR = 65
NOINPUT = 66
CANTCREAT = 73
IOERR = 74
TEMPFAIL = 75
NOPERM = 77
CONFIG = 78
