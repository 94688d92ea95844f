"""Allow ``python -m gridedge``."""

from gridedge.cli.main import main

raise SystemExit(main())
