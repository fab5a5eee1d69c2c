"""A plug-in with a bug (raises while importing): the CLI must report it as a bug, not as the user's mistake."""
raise RuntimeError("plug-in bug for the test")
