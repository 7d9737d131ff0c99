"""flowforge's own exception type: every user-facing error names the problem."""


class FlowforgeError(ValueError):
    """Bad input, bad option or bad file. Subclasses ValueError so generic handlers still work."""
