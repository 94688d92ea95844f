"""Allow ``python -m gridedge``."""

from gridedge.cli import main

raise SystemExit(main())
