"""``gridedge bench``: one module per section of the capacity report."""
