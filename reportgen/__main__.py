"""`python -m reportgen`: the same as the `reportgen` command."""

import sys

from reportgen.cli.main import main

sys.exit(main())
