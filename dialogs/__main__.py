"""`python -m dialogs validate FILE...`."""

import sys

from dialogs.cli import main

sys.exit(main())
