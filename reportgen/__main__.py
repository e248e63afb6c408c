"""`python -m reportgen`: the same as the `reportgen` command."""

import sys

from reportgen.cli import main

sys.exit(main())
