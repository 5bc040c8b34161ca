"""`python -m proctor_eval` is the `proctor-eval` command."""

import sys

from .build import main

sys.exit(main())
