"""Upstream drift: golden fingerprints (``golden``), the watch (``watch``) and issue filing (``github``)."""
